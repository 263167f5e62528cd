// Manifests of directory trees, for tests that check two trees are equal.
//
// scan_tree() walks a tree without following any symlink and records one
// ManifestEntry per path: type, permission bits, owner, size, content
// digest, symlink target, device number, xattrs and hard-link group, and
// optionally the mtime. compare_manifests() lists every difference between
// two manifests as readable lines, so a failing test says exactly which path
// and which attribute differ:
//
//     auto diffs = compare_manifests(scan_tree(expected), scan_tree(actual));
//     BOOST_TEST(diffs.empty(), format_differences(diffs));
//
// What is deliberately not recorded, because it legitimately differs between
// equal trees: inode and device numbers of the tree itself, link counts
// (an overlay mount reports the count of the layer's inode, which includes
// shadowed links), directory sizes (they depend on the file system), atime
// and ctime, and the overlay form's own xattrs (trusted.overlay.*).
//
// Hard-link groups are recorded as the lexicographically smallest path of
// the tree that shares the entry's inode, so the id is the same in two
// trees exactly when the groups are the same.
//
// Thread-compatible; every function throws std::runtime_error (a
// strata::Error) naming the path on I/O errors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace strata::test {

struct ManifestOptions {
    bool mtime = true;         // record mtime (ns) of every entry
    bool include_root = true;  // record the root itself, as path "."
};

struct ManifestEntry {
    std::string path;   // relative to the root, "a/b"; "." for the root
    char type = '?';    // 'f' file, 'd' dir, 'l' symlink, 'c' / 'b' device, 'p' fifo, 's' socket
    unsigned mode = 0;  // permission bits incl. setuid, setgid, sticky (07777)
    uid_t uid = 0;
    gid_t gid = 0;
    uint64_t size = 0;        // files and symlinks; 0 for other types
    std::string sha256;       // hex digest of a file's content; empty for other types
    std::string link_target;  // symlinks only
    unsigned rdev_major = 0;  // devices only
    unsigned rdev_minor = 0;
    std::map<std::string, std::string> xattrs;  // without trusted.overlay.*
    std::string link_group;                     // non-directories: smallest path sharing the inode
    bool has_mtime = false;
    int64_t mtime_ns = 0;  // when has_mtime

    bool operator==(const ManifestEntry&) const = default;
};

// Sorted by path (byte order).
using Manifest = std::vector<ManifestEntry>;

// Walks `root` (a directory, not followed if it is a symlink) and returns its
// manifest. Throws strata::Error naming the path on failure.
Manifest scan_tree(const std::filesystem::path& root, const ManifestOptions& opts = {});

// One line per entry, all attributes, for messages and debugging.
std::string describe(const ManifestEntry& e);

// Every difference between `expected` and `actual`, one readable line each
// ("only in expected: a/b (f)", "a/b: mode 0644 != 0755", ...). Empty when
// the manifests are equal. An mtime is compared only when both entries have
// one. Does not throw except on allocation failure.
std::vector<std::string> compare_manifests(const Manifest& expected, const Manifest& actual);

// The lines of compare_manifests() joined with newlines, at most `limit` of
// them (then "... and N more").
std::string format_differences(const std::vector<std::string>& diffs, size_t limit = 50);

// Finds the entry for `path` in a manifest, or nullptr.
const ManifestEntry* find_entry(const Manifest& m, const std::string& path);

}  // namespace strata::test
