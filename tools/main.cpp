// strata: the command line of the strata layer engine.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "engine/error.h"
#include "tools/cli.h"

namespace strata::cli {

Globals& globals() {
    static Globals g;
    return g;
}

Driver& store() {
    static std::unique_ptr<Driver> driver;
    if (!driver) {
        StoreOptions opts;
        opts.root = globals().root;
        opts.mount_mode = parse_mount_mode(globals().mount_mode);
        opts.limits = globals().limits;
        driver = std::make_unique<Driver>(opts);
    }
    return *driver;
}

Catalog& CatalogAccess::get() {
    if (catalog_file.empty()) return store().catalog();
    if (!owned_) owned_ = std::make_unique<Catalog>(catalog_file, Catalog::Mode::ReadOnly);
    return *owned_;
}

void print_json(const nlohmann::json& j) {
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::string human_bytes(uint64_t n) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace strata::cli

namespace {

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// The first positional word, if it names no verb ("" otherwise).
std::string unknown_verb(CLI::App& app, int argc, char** argv) {
    const std::vector<std::string> valued = {"--root", "--log-level", "--mount-mode",
                                             "--max-entries", "--max-bytes", "--max-ratio"};
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string name = arg.substr(0, arg.find('='));
        if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
            if (name == arg) ++i;  // the value is the next word
            continue;
        }
        if (arg.rfind("-", 0) == 0) return "";  // another option: CLI11 judges it
        try {
            app.get_subcommand(arg);
            return "";
        } catch (const CLI::OptionNotFound&) {
            return arg;
        }
    }
    return "";
}

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("strata");
    logger->set_pattern("strata: %l: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
    using namespace strata::cli;
    CLI::App app{
        "strata: a crash-consistent container layer engine. Layers, parent chains, mount\n"
        "refcounts and a per-layer file index live in one SQLite catalog; every create,\n"
        "apply and remove is a transaction that leaves no half-made layer behind."};
    app.name("strata");
    app.require_subcommand(1);
    Globals& g = globals();
    g.root = env_or("STRATA_ROOT", "/var/lib/strata");
    g.mount_mode = env_or("STRATA_MOUNT_MODE", "auto");
    app.add_option("--root", g.root,
                   "store directory (default $STRATA_ROOT, else /var/lib/strata)");
    app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.add_option("--mount-mode", g.mount_mode,
                   "how `get` shows a chain: overlay, copy or auto (default $STRATA_MOUNT_MODE, "
                   "else auto)")
        ->check(CLI::IsMember({"auto", "overlay", "copy"}));

    app.add_option("--max-entries", g.limits.max_entries,
                   "refuse a layer tar with more entries than this")
        ->capture_default_str();
    app.add_option("--max-bytes", g.limits.max_bytes,
                   "refuse a layer tar whose uncompressed stream is longer than this")
        ->capture_default_str();
    app.add_option("--max-ratio", g.limits.max_ratio,
                   "refuse a compressed layer tar that expands more than this many times "
                   "(checked after 64 MiB; 0: no limit)")
        ->capture_default_str();

    Dispatch d;
    register_driver_verbs(app, d);
    register_store_verbs(app, d);
    register_inspect_verbs(app, d);

    if (std::string verb = unknown_verb(app, argc, argv); !verb.empty()) {
        std::cerr << "strata: error: unknown verb '" << verb << "' (see 'strata --help')\n";
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string verb = unknown_verb(app, argc, argv);
        std::string help = "strata --help";
        for (const auto* sub : app.get_subcommands()) {
            help = "strata " + sub->get_name() + " --help";
        }
        if (!verb.empty()) {
            std::cerr << "strata: error: unknown verb '" << verb << "' (see 'strata --help')\n";
        } else {
            std::cerr << "strata: error: " << e.what() << " (see '" << help << "')\n";
        }
        return 2;
    }

    setup_logging(g.log_level);
    try {
        return d.action ? d.action() : 2;
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "strata: error: " << e.what() << "\n";
        return 1;
    }
}
