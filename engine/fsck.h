// fsck: checking a store's catalog against its backend.
//
// Checks: SQLite integrity and foreign keys; the chain invariant
// chain(L) = [parent] + chain(parent) for every layer; no layer left in an
// intent state; every ready layer present in the backend; no native layer
// the catalog does not know; every mount row with refcount > 0 actually
// prepared, and every prepared layer counted; each read-only layer's file
// index against its directory.
#pragma once

#include <string>
#include <vector>

#include "engine/driver.h"

namespace strata {

struct FsckProblem {
    std::string check;   // "integrity", "chain", "backend", "unknown", "mount", "state"
    std::string layer;   // "" when not about one layer
    std::string detail;  // one line
};

struct FsckReport {
    std::vector<FsckProblem> problems;
    std::vector<std::string> repairs;  // with repair=true, what was done
    size_t layers_checked = 0;
};

// With `repair`, runs recovery (which fixes intents, stray mounts and
// unknown native layers) and checks again; other problems are only reported.
// `full` also compares every indexed file's metadata and reads its content
// (fsck_index.h). Holds the store lock while checking.
FsckReport run_fsck(Driver& driver, bool repair, bool full = false);

}  // namespace strata
