// Store-level verbs: import, fsck, recover.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "engine/error.h"
#include "engine/fsck.h"
#include "engine/importer.h"
#include "tools/cli.h"

namespace strata::cli {

namespace {

struct Args {
    std::string archive, name;
    bool repair = false, json = false, full = false;
};

// One updating line on a terminal: layer i/n and bytes read.
void show_progress(const ImportProgress& p) {
    std::fprintf(stdout, "\rlayer %zu/%zu: %s%s\x1b[K", p.layer_index, p.layer_count,
                 p.reused ? "already present" : human_bytes(p.bytes).c_str(),
                 p.reused ? "" : " read");
    std::fflush(stdout);
}

int do_import(const Args& a) {
    bool tty = ::isatty(STDOUT_FILENO);
    std::optional<std::string> name;
    if (!a.name.empty()) name = a.name;
    std::function<void(const ImportProgress&)> progress;
    if (tty) progress = show_progress;
    ImportResult r = import_image(store(), a.archive, name, progress);
    if (tty) std::fprintf(stdout, "\r\x1b[K");
    std::cout << "imported " << r.image_name << ": " << r.layers.size()
              << (r.layers.size() == 1 ? " layer (" : " layers (") << r.new_layers << " new)\n";
    std::cout << r.top_layer << "\n";
    return 0;
}

int do_fsck(const Args& a) {
    FsckReport r = run_fsck(store(), a.repair, a.full);
    if (a.json) {
        nlohmann::json j;
        j["clean"] = r.problems.empty();
        j["layers_checked"] = r.layers_checked;
        j["problems"] = nlohmann::json::array();
        for (const auto& p : r.problems) {
            j["problems"].push_back({{"check", p.check}, {"layer", p.layer}, {"detail", p.detail}});
        }
        j["repairs"] = r.repairs;
        print_json(j);
    } else {
        for (const auto& line : r.repairs) std::cout << "repaired: " << line << "\n";
        for (const auto& p : r.problems) {
            std::cout << p.check << ": " << (p.layer.empty() ? "" : "layer " + p.layer + ": ")
                      << p.detail << "\n";
        }
        std::cout << (r.problems.empty() ? "clean" : "problems found") << " ("
                  << r.layers_checked << " layers checked)\n";
    }
    return r.problems.empty() ? 0 : 1;
}

}  // namespace

void register_store_verbs(CLI::App& app, Dispatch& d) {
    static Args a;

    auto* imp = app.add_subcommand(
        "import", "import a docker-archive or OCI image (archive or layout dir); "
                  "prints the top layer id last");
    imp->add_option("ARCHIVE", a.archive, "image archive file or OCI layout directory")
        ->required();
    imp->add_option("--name", a.name, "name to record the image under");
    imp->callback([&d] { d.action = [] { return do_import(a); }; });

    auto* fsck = app.add_subcommand("fsck", "check the catalog against the backend");
    fsck->add_flag("--repair", a.repair, "make the safe repairs and report each");
    fsck->add_flag("--full", a.full, "also compare every indexed file and read its content");
    fsck->add_flag("--json", a.json, "print JSON");
    fsck->callback([&d] { d.action = [] { return do_fsck(a); }; });

    auto* rec = app.add_subcommand("recover", "run crash recovery now (it also runs at open)");
    rec->callback([&d] {
        d.action = [] {
            auto done = store().recover();
            for (const auto& line : done) std::cout << line << "\n";
            if (done.empty()) std::cout << "nothing to recover\n";
            return 0;
        };
    });
}

}  // namespace strata::cli
