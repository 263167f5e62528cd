// A deterministic, non-following walk over a layer directory.
//
// walk_layer visits every entry below a layer root, directory by directory,
// names in bytewise order, each directory before its contents. It opens
// each directory relative to its parent with O_NOFOLLOW, so a symlink is
// reported as a symlink and never entered.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <string>

namespace strata::codec {

struct WalkItem {
    const std::string& rel;   // "a/b", relative to the layer root
    int dirfd;                // the open directory holding the entry
    const std::string& name;  // the entry's name in `dirfd`
    const struct stat& st;    // lstat of the entry
};

// Calls `visit` for each entry below `root` (not the root itself). For a
// directory, `visit` returns whether to walk into it. Throws Error naming
// the path on I/O failure; exceptions from `visit` pass through.
void walk_layer(const std::filesystem::path& root,
                const std::function<bool(const WalkItem&)>& visit);

// The same below the open directory `dirfd`, whose path is `rel` ("" for
// the root).
void walk_dir(int dirfd, const std::string& rel, const std::function<bool(const WalkItem&)>& visit);

}  // namespace strata::codec
