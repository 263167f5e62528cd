// The driver verbs of the command-line contract (docs/cli.md).
#include <unistd.h>

#include <iostream>

#include "engine/error.h"
#include "tools/cli.h"

namespace strata::cli {

namespace {

std::optional<std::string> opt(const std::string& s) {
    if (s.empty()) return std::nullopt;
    return s;
}

std::vector<std::pair<std::string, std::string>> parse_storage_opts(
    const std::vector<std::string>& raw) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& kv : raw) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw Error("--storage-opt '" + kv + "': expected key=value");
        }
        out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    return out;
}

struct Args {
    std::string id, parent, label;
    bool rw = false, json = false;
    std::vector<std::string> storage_opts;
};

}  // namespace

void register_driver_verbs(CLI::App& app, Dispatch& d) {
    static Args a;

    auto* create = app.add_subcommand("create", "make an empty layer (--rw: a writable sandbox)");
    create->add_flag("--rw", a.rw, "make a writable sandbox");
    create->add_option("--parent", a.parent, "parent layer id");
    create->add_option("--storage-opt", a.storage_opts, "backend option key=value (repeatable)");
    create->add_option("ID", a.id, "new layer id")->required();
    create->callback([&d] {
        d.action = [] {
            CreateOptions o;
            o.parent = opt(a.parent);
            o.sandbox = a.rw;
            o.storage_opts = parse_storage_opts(a.storage_opts);
            store().create(a.id, o);
            return 0;
        };
    });

    auto* remove = app.add_subcommand("remove", "remove a layer (not while mounted or a parent)");
    remove->add_option("ID", a.id, "layer id")->required();
    remove->callback([&d] { d.action = [] { store().remove(a.id); return 0; }; });

    auto* exists = app.add_subcommand("exists", "exit 0 if the layer exists, 1 if not");
    exists->add_option("ID", a.id, "layer id")->required();
    exists->callback([&d] { d.action = [] { return store().exists(a.id) ? 0 : 1; }; });

    auto* get = app.add_subcommand("get", "mount a layer (refcount + 1) and print its path");
    get->add_option("ID", a.id, "layer id")->required();
    get->add_option("--mount-label", a.label, "mount label to record");
    get->callback([&d] {
        d.action = [] {
            std::cout << store().get(a.id, a.label) << "\n";
            return 0;
        };
    });

    auto* put = app.add_subcommand("put", "release a mount (refcount - 1); unmount at 0");
    put->add_option("ID", a.id, "layer id")->required();
    put->callback([&d] { d.action = [] { store().put(a.id); return 0; }; });

    auto* diff = app.add_subcommand("diff", "write the layer's changes as a tar to stdout");
    diff->add_option("ID", a.id, "layer id")->required();
    diff->add_option("--parent", a.parent, "parent layer id (must be the layer's parent)");
    diff->callback([&d] {
        d.action = [] {
            if (::isatty(STDOUT_FILENO)) throw Error("diff: refusing to write a tar to a terminal");
            FdSink out(STDOUT_FILENO, "stdout");
            store().diff(a.id, opt(a.parent), out);
            return 0;
        };
    });

    auto* changes = app.add_subcommand("changes", "list paths the layer adds, modifies, deletes");
    changes->add_option("ID", a.id, "layer id")->required();
    changes->add_option("--parent", a.parent, "parent layer id (must be the layer's parent)");
    changes->add_flag("--json", a.json, "print JSON");
    changes->callback([&d] {
        d.action = [] {
            auto list = store().changes(a.id, opt(a.parent));
            if (a.json) {
                nlohmann::json j = nlohmann::json::array();
                for (const auto& c : list) {
                    j.push_back({{"path", c.path}, {"kind", change_kind_name(c.kind)}});
                }
                print_json(j);
            } else {
                for (const auto& c : list) {
                    std::cout << change_kind_name(c.kind) << " " << c.path << "\n";
                }
            }
            return 0;
        };
    });

    auto* apply = app.add_subcommand("apply-diff", "apply a layer tar from stdin; print the size");
    apply->add_option("ID", a.id, "layer id (created if missing)")->required();
    apply->add_option("--parent", a.parent, "parent layer id");
    apply->callback([&d] {
        d.action = [] {
            FdSource in(STDIN_FILENO, "stdin");
            std::cout << store().apply_diff(a.id, opt(a.parent), in) << "\n";
            return 0;
        };
    });

    auto* dsize = app.add_subcommand("diff-size", "print the bytes the layer's changes hold");
    dsize->add_option("ID", a.id, "layer id")->required();
    dsize->add_option("--parent", a.parent, "parent layer id (must be the layer's parent)");
    dsize->callback([&d] {
        d.action = [] {
            std::cout << store().diff_size(a.id, opt(a.parent)) << "\n";
            return 0;
        };
    });

    auto* meta = app.add_subcommand("metadata", "print the layer's metadata");
    meta->add_option("ID", a.id, "layer id")->required();
    meta->add_flag("--json", a.json, "print JSON");
    meta->callback([&d] {
        d.action = [] {
            auto kv = store().metadata(a.id);
            if (a.json) {
                nlohmann::json j = nlohmann::json::object();
                for (const auto& [k, v] : kv) j[k] = v;
                print_json(j);
            } else {
                for (const auto& [k, v] : kv) std::cout << k << ": " << v << "\n";
            }
            return 0;
        };
    });

    auto* status = app.add_subcommand("status", "print facts about the store");
    status->add_flag("--json", a.json, "print JSON");
    status->callback([&d] {
        d.action = [] {
            auto kv = store().status();
            if (a.json) {
                nlohmann::json j = nlohmann::json::array();
                for (const auto& [k, v] : kv) j.push_back({k, v});
                print_json(j);
            } else {
                for (const auto& [k, v] : kv) std::cout << k << ": " << v << "\n";
            }
            return 0;
        };
    });

    auto* cleanup = app.add_subcommand("cleanup", "release every mount and collect leftovers");
    cleanup->callback([&d] {
        d.action = [] {
            for (const auto& line : store().cleanup()) std::cout << line << "\n";
            return 0;
        };
    });
}

}  // namespace strata::cli
