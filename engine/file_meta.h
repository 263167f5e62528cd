// File metadata helpers for the tar codec: extended attributes, ownership,
// modes and times, and the data extents of sparse files.
//
// Files are named either by an open descriptor or by (directory
// descriptor, name); the second form never follows `name` when it is a
// symlink. For the xattr calls that have no *at form, the name is reached
// through /proc/self/fd/<dirfd>/<name> with the l* calls, which resolves the
// directory descriptor and then looks `name` up without following it.
//
// Every function throws Error naming its `display` path on failure.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strata::codec {

// Extended attributes as (name, value) pairs.
using Xattrs = std::vector<std::pair<std::string, std::string>>;

// Whether `name` is the host's own metadata rather than layer content:
// every security.* name except security.capability (SELinux and SMACK
// labels, IMA and EVM data). The codec never applies, removes or exports
// them; the host's policy or the mount label sets them.
bool is_host_xattr(const std::string& name);

// The xattrs of the open file `fd`, sorted by name, overlay-form names
// (trusted.overlay.*) and host names (is_host_xattr) left out. A file
// system without xattrs gives none.
Xattrs read_xattrs_fd(int fd, const std::string& display);

// The xattrs of `name` in `dirfd` (not followed), as read_xattrs_fd.
Xattrs read_xattrs_at(int dirfd, const std::string& name, const std::string& display);

// Whether `name` in `dirfd` (not followed) carries the xattr `key`.
bool has_xattr_at(int dirfd, const std::string& name, const std::string& key,
                  const std::string& display);

// Sets one xattr on the open file `fd`.
void write_xattr_fd(int fd, const std::string& key, const std::string& value,
                    const std::string& display);

// Sets one xattr on `name` in `dirfd` (not followed).
void write_xattr_at(int dirfd, const std::string& name, const std::string& key,
                    const std::string& value, const std::string& display);

// Makes the content xattrs of the open directory `fd` exactly `want`:
// others are removed, overlay-form and host names are left alone.
void replace_xattrs_fd(int fd, const Xattrs& want, const std::string& display);

// {"name":"<base64 value>",...} for `xattrs`, or "" when there are none.
std::string xattrs_to_json(const Xattrs& xattrs);

// Access and modification times as futimens/utimensat take them.
struct FileTimes {
    struct timespec atime {};
    struct timespec mtime {};
};
FileTimes times_of(const struct stat& st);

// Owner, then permission bits (after the owner so setuid/setgid stay),
// then xattrs, then times, on the open file `fd`.
void apply_meta_fd(int fd, uint32_t uid, uint32_t gid, uint32_t mode, const Xattrs& xattrs,
                   const FileTimes& times, const std::string& display);

// The same for `name` in `dirfd`, never followed; `set_mode` is false for
// symlinks, whose permission bits do not exist on Linux.
void apply_meta_at(int dirfd, const std::string& name, uint32_t uid, uint32_t gid, uint32_t mode,
                   bool set_mode, const Xattrs& xattrs, const FileTimes& times,
                   const std::string& display);

// The target of the symlink `name` in `dirfd`.
std::string read_symlink_at(int dirfd, const std::string& name, const std::string& display);

// A run of file content that is not a hole.
struct Extent {
    off_t offset = 0;
    off_t length = 0;
};

// The data extents of the open regular file `fd` of `size` bytes, found with
// SEEK_DATA/SEEK_HOLE (the whole file when the file system cannot tell).
std::vector<Extent> data_extents(int fd, off_t size, const std::string& display);

// Copies the regular file `in` of `size` bytes to `out`, keeping its holes.
void copy_file_content(int in, int out, off_t size, const std::string& display);

// Writes all of `buf` at `offset` of `fd`.
void write_all_at(int fd, const void* buf, size_t len, off_t offset, const std::string& display);

}  // namespace strata::codec
