// Copying one file system entry with all of its metadata.
//
// These are the building blocks of the copying mount mode (copy_mount.h):
// they create one entry in a destination directory as a copy of a source
// entry, keeping content (holes of sparse files stay holes), type, mode
// (setuid, setgid and sticky bits included), owner, extended attributes,
// access and modification times, symlink targets and device numbers.
//
// Invariants kept by every function here:
//   - no symlink is ever followed, neither on the source nor on the
//     destination side: sources are opened with O_NOFOLLOW or read with the
//     l* calls, destinations are created and changed through *at calls on
//     a directory descriptor with AT_SYMLINK_NOFOLLOW;
//   - the overlay form's own xattrs (trusted.overlay.*) are never copied;
//   - metadata is applied in the order that keeps it: content first (a write
//     drops security.capability), then owner (chown drops setuid/setgid),
//     then mode, then xattrs, then times.
// Every failure throws strata::Error naming the entry.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>

namespace strata {

// An owned file descriptor, closed on destruction. Not copyable.
class ScopedFd {
public:
    ScopedFd() = default;
    explicit ScopedFd(int fd) : fd_(fd) {}
    ~ScopedFd();
    ScopedFd(const ScopedFd&) = delete;
    ScopedFd& operator=(const ScopedFd&) = delete;
    ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    ScopedFd& operator=(ScopedFd&& other) noexcept;

    int get() const { return fd_; }

private:
    int fd_ = -1;
};

struct CopyOptions {
    // fsync every regular file and directory created, so that after an
    // fsync of the destination's parent the whole copy is durable.
    bool sync = false;
};

// Extended attributes of the entry at `path` (not followed), name -> value,
// without trusted.overlay.*. Throws Error naming `path` on failure.
std::map<std::string, std::string> read_xattrs(const std::filesystem::path& path);

// True if the regular files `a` and `b` hold the same bytes. Throws Error
// if either cannot be read.
bool same_content(const std::filesystem::path& a, const std::filesystem::path& b);

// Opens the directory `path` without following a symlink there.
// Throws Error naming `path`.
ScopedFd open_dir(const std::filesystem::path& path);

// Creates the directory `name` in `dirfd`, private (0700) until
// apply_dir_metadata() gives it its final metadata, and returns it open.
// Throws Error naming `display` (the entry's path, for messages).
ScopedFd make_dir(int dirfd, const std::string& name, const std::string& display);

// Gives the open directory `fd` the owner, mode, xattrs and times of the
// source directory `src` whose lstat is `st`; fsyncs it if `opts.sync`.
// Call it after the directory's children are complete, so its times stay.
// Throws Error naming `display`.
void apply_dir_metadata(int fd, const std::filesystem::path& src, const struct stat& st,
                        const std::string& display, const CopyOptions& opts);

// Creates `name` in `dirfd` as a copy of the non-directory `src` whose lstat
// is `st`: a regular file, symlink, character or block device, fifo or
// socket, with all of its metadata. `name` must not exist.
// Throws Error naming `display`.
void copy_node(const std::filesystem::path& src, const struct stat& st, int dirfd,
               const std::string& name, const std::string& display, const CopyOptions& opts);

// Places copies of non-directories into one destination tree so that source
// entries sharing an inode (same st_dev and st_ino) become hard links of one
// destination inode. Not copyable; one instance per destination tree.
class LinkingCopier {
public:
    // `root_fd`: the destination tree's root directory, kept open by the caller
    // for the lifetime of this object.
    LinkingCopier(int root_fd, CopyOptions opts) : root_fd_(root_fd), opts_(opts) {}
    LinkingCopier(const LinkingCopier&) = delete;
    LinkingCopier& operator=(const LinkingCopier&) = delete;

    // Creates `name` in `dirfd` (whose path relative to the destination root
    // is the parent of `rel`) as a hard link to an earlier copy of the same
    // source inode, or else as a new copy (copy_node). Throws Error naming `rel`.
    void place(const std::filesystem::path& src, const struct stat& st, int dirfd,
               const std::string& name, const std::string& rel);

private:
    int root_fd_;
    CopyOptions opts_;
    std::map<std::pair<dev_t, ino_t>, std::string> first_copy_;  // source inode -> rel
};

}  // namespace strata
