// Inspection verbs: ls, tree, show, files, find, du, stats. Each reads the
// catalog only, so `--catalog FILE` answers from a copied catalog alone.
#include <sys/stat.h>

#include <iostream>
#include <map>

#include "engine/error.h"
#include "tools/cli.h"

namespace strata::cli {

namespace {

struct Args {
    CatalogAccess cat;
    std::string id, path;
    bool json = false, dot = false;
};

std::string mode_string(const FileRecord& r) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", r.mode & 07777);
    return buf;
}

// The index keeps the layer root's own entry as ".".
std::string shown_path(const std::string& p) { return p == "." ? "/" : "/" + p; }

nlohmann::json file_json(const FileRecord& r) {
    nlohmann::json j = {{"path", shown_path(r.path)},        {"type", std::string(1, r.type)},
                        {"mode", mode_string(r)},      {"uid", r.uid},
                        {"gid", r.gid},                {"size", r.size},
                        {"mtime", r.mtime}};
    if (!r.link_target.empty()) j["link_target"] = r.link_target;
    if (r.type == 'c' || r.type == 'b') j["device"] = {r.dev_major, r.dev_minor};
    if (!r.xattrs_json.empty()) j["xattrs"] = nlohmann::json::parse(r.xattrs_json, nullptr, false);
    return j;
}

std::string normalize(std::string p) {
    while (p.rfind("./", 0) == 0) p.erase(0, 2);
    while (!p.empty() && p[0] == '/') p.erase(0, 1);
    while (!p.empty() && p.back() == '/') p.pop_back();
    return p.empty() ? "." : p;
}

LayerRow need_layer(Catalog& c, const std::string& id) {
    auto row = c.layer(id);
    if (!row) throw NotFound("layer " + id + " does not exist");
    return *row;
}

void print_tree(Catalog& c, const std::multimap<std::string, LayerRow>& kids,
                const std::string& parent, const std::string& indent) {
    auto [b, e] = kids.equal_range(parent);
    for (auto it = b; it != e; ++it) {
        const LayerRow& r = it->second;
        std::cout << indent << r.id << "  " << kind_name(r.kind) << "  " << human_bytes(r.size)
                  << (r.state != LayerState::Ready ? std::string("  ") + state_name(r.state) : "")
                  << "\n";
        print_tree(c, kids, r.id, indent + "  ");
    }
}

int do_ls(Args& a) {
    Catalog& c = a.cat.get();
    auto rows = c.layers();
    if (a.json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& r : rows) j.push_back(layer_json(c, r));
        print_json(j);
        return 0;
    }
    std::printf("%-66s %-8s %-8s %10s  %s\n", "ID", "KIND", "STATE", "SIZE", "CREATED");
    for (const auto& r : rows) {
        std::printf("%-66s %-8s %-8s %10s  %s\n", r.id.c_str(), kind_name(r.kind),
                    state_name(r.state), human_bytes(r.size).c_str(), r.created.c_str());
    }
    return 0;
}

int do_tree(Args& a) {
    Catalog& c = a.cat.get();
    std::multimap<std::string, LayerRow> kids;
    for (const auto& r : c.layers()) kids.emplace(r.parent.value_or(""), r);
    if (!a.dot) {
        print_tree(c, kids, "", "");
        return 0;
    }
    std::cout << "digraph layers {\n  rankdir=BT;\n";
    for (const auto& [parent, r] : kids) {
        std::cout << "  \"" << r.id << "\" [label=\"" << r.id.substr(0, 12) << "\\n"
                  << kind_name(r.kind) << " " << human_bytes(r.size) << "\"];\n";
        if (!parent.empty()) std::cout << "  \"" << r.id << "\" -> \"" << parent << "\";\n";
    }
    for (const auto& img : c.images()) {
        std::cout << "  \"image:" << img.name << "\" [shape=box];\n  \"image:" << img.name
                  << "\" -> \"" << img.top_layer << "\";\n";
    }
    std::cout << "}\n";
    return 0;
}

int do_show(Args& a) {
    Catalog& c = a.cat.get();
    LayerRow r = need_layer(c, a.id);
    nlohmann::json j = layer_json(c, r);
    j["native_id"] = r.native_id;
    j["diff_digest"] = r.diff_digest;
    j["chain"] = c.chain(r.id);
    auto m = c.mount(r.id);
    j["mount"] = {{"refcount", m ? m->refcount : 0},
                  {"path", m && m->refcount > 0 ? nlohmann::json(m->path) : nlohmann::json()}};
    j["files"] = c.file_count(r.id);
    j["children"] = c.children(r.id);
    j["images"] = c.images_using(r.id);
    j["storage_opts"] = nlohmann::json::parse(r.storage_opts, nullptr, false);
    if (a.json) {
        print_json(j);
        return 0;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        std::cout << it.key() << ": "
                  << (it->is_string() ? it->get<std::string>() : it->dump()) << "\n";
    }
    return 0;
}

int do_files(Args& a) {
    Catalog& c = a.cat.get();
    need_layer(c, a.id);
    nlohmann::json all = nlohmann::json::array();
    c.for_each_file(a.id, [&](const FileRecord& r) {
        if (a.json) {
            all.push_back(file_json(r));
            return;
        }
        std::cout << r.type << " " << mode_string(r) << " " << r.uid << ":" << r.gid << " "
                  << r.size << " " << shown_path(r.path)
                  << (r.link_target.empty() ? "" : " -> " + r.link_target) << "\n";
    });
    if (a.json) print_json(all);
    return 0;
}

int do_find(Args& a) {
    Catalog& c = a.cat.get();
    auto hits = c.find_file(normalize(a.path));
    if (a.json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& [layer, r] : hits) {
            nlohmann::json f = file_json(r);
            f["layer"] = layer;
            j.push_back(f);
        }
        print_json(j);
    } else {
        for (const auto& [layer, r] : hits) {
            std::cout << layer << " " << r.type << " " << mode_string(r) << " " << r.size << " "
                      << shown_path(r.path) << "\n";
        }
    }
    return hits.empty() ? 1 : 0;
}

int do_du(Args& a) {
    Catalog& c = a.cat.get();
    uint64_t total = 0;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : c.layers()) {
        total += r.size;
        j.push_back({{"id", r.id}, {"size", r.size}, {"files", c.file_count(r.id)}});
        if (!a.json) std::printf("%12s  %s\n", human_bytes(r.size).c_str(), r.id.c_str());
    }
    if (a.json) {
        print_json({{"layers", j}, {"total", total}});
    } else {
        std::printf("%12s  total\n", human_bytes(total).c_str());
    }
    return 0;
}

int do_stats(Args& a) {
    Catalog& c = a.cat.get();
    auto rows = c.layers();
    uint64_t bytes = 0, sandboxes = 0, files = 0, mounted = 0;
    for (const auto& r : rows) {
        bytes += r.size;
        sandboxes += r.kind == LayerKind::Sandbox;
        files += static_cast<uint64_t>(c.file_count(r.id));
    }
    for (const auto& m : c.mounts()) mounted += m.refcount > 0;
    nlohmann::json j = {{"layers", rows.size()},       {"sandboxes", sandboxes},
                        {"images", c.images().size()}, {"files", files},
                        {"bytes", bytes},              {"mounted", mounted},
                        {"schema_version", c.schema_version()}};
    if (a.json) {
        print_json(j);
    } else {
        for (auto it = j.begin(); it != j.end(); ++it) std::cout << it.key() << ": " << *it << "\n";
    }
    return 0;
}

CLI::App* verb(CLI::App& app, Dispatch& d, Args& a, const char* name, const char* help,
               int (*fn)(Args&)) {
    auto* sub = app.add_subcommand(name, help);
    sub->add_option("--catalog", a.cat.catalog_file, "read this catalog file alone, read-only");
    sub->add_flag("--json", a.json, "print JSON");
    sub->callback([&d, &a, fn] { d.action = [&a, fn] { return fn(a); }; });
    return sub;
}

}  // namespace

nlohmann::json layer_json(Catalog& catalog, const LayerRow& r) {
    (void)catalog;
    return {{"id", r.id},
            {"parent", r.parent ? nlohmann::json(*r.parent) : nlohmann::json()},
            {"kind", kind_name(r.kind)},
            {"state", state_name(r.state)},
            {"size", r.size},
            {"created", r.created}};
}

void register_inspect_verbs(CLI::App& app, Dispatch& d) {
    static Args a;
    verb(app, d, a, "ls", "list layers", do_ls);
    verb(app, d, a, "tree", "show layers as a tree of parents (--dot: Graphviz)", do_tree)
        ->add_flag("--dot", a.dot, "print a Graphviz digraph");
    verb(app, d, a, "show", "show one layer: chain, mount, files, images", do_show)
        ->add_option("ID", a.id, "layer id")
        ->required();
    verb(app, d, a, "files", "list a layer's file index (one row per tar entry)", do_files)
        ->add_option("ID", a.id, "layer id")
        ->required();
    verb(app, d, a, "find", "which layers hold PATH (exit 1 if none)", do_find)
        ->add_option("PATH", a.path, "path inside a layer, e.g. /etc/passwd")
        ->required();
    verb(app, d, a, "du", "bytes held by each layer", do_du);
    verb(app, d, a, "stats", "counts and totals for the store", do_stats);
}

}  // namespace strata::cli
