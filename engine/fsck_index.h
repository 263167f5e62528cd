// fsck's check of a layer's file index against the layer directory.
//
// The index keeps one record per tar entry in stream order; the expected
// tree is what those records leave when applied in order: the last record
// for a path wins, a non-directory or a whiteout replaces everything below
// its path, and a whiteout of a name this layer already has changes
// nothing (the OCI rule that whiteouts only hide lower layers).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "storage/catalog.h"

namespace strata {

struct IndexProblem {
    std::string path;
    std::string detail;
};

// Compares the index of `layer` with `dir`. Quick mode checks that every
// expected path exists with the right type (and size, for files); `full`
// also compares modes, owners and symlink targets, reads every regular file
// to its end, and reports entries of the directory the index does not
// explain.
std::vector<IndexProblem> check_file_index(Catalog& catalog, const std::string& layer,
                                           const std::filesystem::path& dir, bool full);

}  // namespace strata
