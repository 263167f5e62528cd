// Building layer directories by hand, and mounting them with the kernel's
// overlayfs, for tests that check strata against what the kernel shows.
//
// TreeBuilder creates entries below a root directory with plain system
// calls (no strata code), in the overlay form of engine/overlay_format.h
// where a whiteout or an opaque directory is asked for:
//
//     TreeBuilder l0(tmp / "l0");
//     l0.dir("etc").file("etc/hosts", "127.0.0.1 localhost\n", 0644)
//       .owner("etc/hosts", 0, 4).xattr("etc/hosts", "user.k", "v")
//       .whiteout("etc/motd").opaque("var").stamp(1'600'000'000);
//
// OverlayMount mounts a chain read-only (lowerdirs only, nearest first) and
// unmounts it when it goes away, even when the test failed.
//
// Every call throws std::runtime_error naming the path and the system call
// that failed. Test code only: runs as root.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace strata::test {

class TreeBuilder {
public:
    // Creates `root` (and its parents) if missing.
    explicit TreeBuilder(std::filesystem::path root);

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path at(const std::string& rel) const;

    // Each call makes one entry at `rel` (relative to the root); the parent must exist.
    // Modes are applied exactly (no umask).
    TreeBuilder& dir(const std::string& rel, mode_t mode = 0755);
    TreeBuilder& file(const std::string& rel, const std::string& content, mode_t mode = 0644);
    TreeBuilder& symlink(const std::string& rel, const std::string& target);
    TreeBuilder& hardlink(const std::string& rel, const std::string& existing);
    TreeBuilder& fifo(const std::string& rel, mode_t mode = 0644);
    TreeBuilder& socket(const std::string& rel, mode_t mode = 0755);
    // `type`: 'c' or 'b'.
    TreeBuilder& device(const std::string& rel, char type, unsigned major, unsigned minor,
                        mode_t mode = 0660);
    // A file of `size` bytes that holds only `chunks` (offset, data); the rest are holes.
    TreeBuilder& sparse(const std::string& rel, uint64_t size,
                        const std::vector<std::pair<uint64_t, std::string>>& chunks);
    // Overlay form: character device 0:0.
    TreeBuilder& whiteout(const std::string& rel);
    // Overlay form: trusted.overlay.opaque = "y" on the directory at `rel`.
    TreeBuilder& opaque(const std::string& rel);

    // Changes of an existing entry (never following a symlink at `rel`).
    TreeBuilder& xattr(const std::string& rel, const std::string& name, const std::string& value);
    // security.capability granting CAP_NET_BIND_SERVICE (revision 2 format).
    TreeBuilder& capability(const std::string& rel);
    TreeBuilder& owner(const std::string& rel, uid_t uid, gid_t gid);
    TreeBuilder& chmod(const std::string& rel, mode_t mode);
    TreeBuilder& mtime(const std::string& rel, int64_t sec, long nsec);
    // Removes the entry at `rel` (a directory with everything in it).
    TreeBuilder& remove(const std::string& rel);

    // Gives every entry of the tree, the root included, a distinct fixed
    // atime and mtime from `base` seconds on (with nanoseconds), children
    // before their directory, so times are deterministic and comparable.
    TreeBuilder& stamp(int64_t base);

private:
    std::filesystem::path root_;
};

// A read-only overlay mount of `lowers` (nearest first) at `mountpoint`
// (created if missing). The kernel needs at least two lowerdirs without an
// upperdir, so an empty directory "<mountpoint>.empty-lower" is added as the
// farthest one when needed. Unmounts on destruction (lazily if busy).
class OverlayMount {
public:
    OverlayMount(const std::vector<std::filesystem::path>& lowers,
                 const std::filesystem::path& mountpoint);
    ~OverlayMount();
    OverlayMount(const OverlayMount&) = delete;
    OverlayMount& operator=(const OverlayMount&) = delete;

    const std::filesystem::path& path() const { return mountpoint_; }

private:
    std::filesystem::path mountpoint_;
};

}  // namespace strata::test
