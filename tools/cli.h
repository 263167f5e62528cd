// Shared pieces of the `strata` command line: global options, store access
// and output helpers. Each verb group registers its subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/driver.h"

namespace strata::cli {

struct Globals {
    std::string root;        // --root, else $STRATA_ROOT, else /var/lib/strata
    std::string log_level = "warn";
    std::string mount_mode;  // --mount-mode, else $STRATA_MOUNT_MODE, else auto
    ApplyLimits limits;      // --max-entries, --max-bytes, --max-ratio
};

// What a verb's callback does; it returns the process exit code.
using Action = std::function<int()>;

// The verb picked on the command line sets this.
struct Dispatch {
    Action action;
};

Globals& globals();

// Opens the store named by the global options (runs recovery).
Driver& store();

// A read-only catalog: the --catalog file when given, else the store's
// catalog opened through the store.
struct CatalogAccess {
    std::string catalog_file;  // --catalog
    Catalog& get();

private:
    std::unique_ptr<Catalog> owned_;
};

void register_driver_verbs(CLI::App& app, Dispatch& d);
void register_inspect_verbs(CLI::App& app, Dispatch& d);
void register_store_verbs(CLI::App& app, Dispatch& d);

// Prints `j` to stdout, pretty, with a final newline.
void print_json(const nlohmann::json& j);

// "12.3 MiB" style sizes for humans.
std::string human_bytes(uint64_t n);

// Layer rows as the JSON objects `ls` and `show` print.
nlohmann::json layer_json(Catalog& catalog, const LayerRow& row);

}  // namespace strata::cli
