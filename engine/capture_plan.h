// What a top layer directory must hold so that, stacked on a lower chain,
// it shows a given tree: the planning half of capture() (copy_mount.h).
//
// plan_capture() compares the tree `mounted` with the merged tree of the
// lower chain and lists the entries of the new layer directory:
//
//   - a path of `mounted` absent from the lower chain is copied;
//   - a non-directory that differs from the lower one in type, mode, owner,
//     mtime, size, content, symlink target, device number, xattrs or
//     hard-link group is copied. Hard-link groups are compared as sets of
//     paths: the paths sharing the inode in `mounted` against the paths
//     sharing the lower inode that `mounted` still has. Every member of a
//     group gets the same answer, so a group is copied whole (and stays one
//     group) or left to the lower chain whole;
//   - a directory that differs from the lower directory only in metadata,
//     or that has changed entries below it, becomes a plain directory that
//     merges with the lower one;
//   - a directory where the lower chain has a non-directory becomes an
//     opaque directory, and everything below it is copied;
//   - a path of a merged lower directory that `mounted` lacks becomes a
//     whiteout.
//
// Stacking the result on the lower chain gives back `mounted` exactly (the
// root directory's own metadata excepted: the caller gives the new layer's
// root the metadata of `mounted`'s root). Nothing is written here.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/merged_view.h"

namespace strata {

struct UpperEntry {
    enum class Kind {
        kCopy,       // copy the non-directory from `mounted`
        kDir,        // directory with `mounted`'s metadata, merging with lower
        kOpaqueDir,  // directory with `mounted`'s metadata, hiding lower
        kWhiteout,   // a whiteout hiding the lower path
    };
    std::string rel;  // relative path, never empty (the root is implicit)
    Kind kind;
};

// The entries of the new top layer, each directory before its contents.
// Throws Error naming the path if `mounted` holds something the overlay form
// cannot express (a character device 0:0 reads as a whiteout) or on I/O errors.
std::vector<UpperEntry> plan_capture(const std::filesystem::path& mounted, const MergedView& lower);

}  // namespace strata
