// Path resolution inside a layer directory that never follows symlinks.
//
// The tar codec must not let an archive (or a hostile layer below it) reach
// anything outside the layer it works on. Every lookup here starts from an
// open directory descriptor and walks one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY); a symlink or a non-directory where a
// directory is needed ends the walk instead of being followed. Names come in
// as components (no "/", never "." or "..").
//
// Thread-compatible: one thread per object.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/merged_view.h"

namespace strata::codec {

// Owns one file descriptor and closes it on destruction.
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release();
    void reset(int fd = -1);

  private:
    int fd_ = -1;
};

// Splits an archive path into components: leading "/" and "./" are
// dropped, empty and "." components are skipped, so "./", "/" and "." give
// no components at all (the layer root). Throws Error("path escapes the
// layer") when a component is "..".
std::vector<std::string> split_entry_path(std::string_view name);

// Joins the first `count` components with "/" ("" for none).
std::string join_components(const std::vector<std::string>& comps, size_t count);

// The longest name one component and one whole path may have on Linux
// (NAME_MAX and PATH_MAX - 1).
inline constexpr size_t kMaxComponent = 255;
inline constexpr size_t kMaxPath = 4095;

// Refuses a name the file system cannot hold: throws Error("component '…'
// is N bytes, more than the 255 a file name may have") or Error("<what> is
// N bytes, more than the 4095 a path may have"), where `joined` is the
// normalised name and `what` says what it names ("the name", "the hard link
// target").
void check_name_length(const std::vector<std::string>& comps, const std::string& joined,
                       const std::string& what);

// `name` fit for a one-line message: control bytes and DEL become "\xNN",
// and a name over 300 bytes is cut to its first 200 with the full length
// added ("…[4201 bytes]"). Other bytes are kept as they are.
std::string shown_name(std::string_view name);

// Opens the directory `root` (following symlinks in the caller's own path).
// Throws Error naming `root`.
UniqueFd open_root_dir(const std::filesystem::path& root);

// Opens directory `name` in `dirfd` without following a symlink. Returns an
// invalid descriptor, errno set, when it is absent, a symlink or not a
// directory.
UniqueFd open_dir_at(int dirfd, const std::string& name);

// Opens the directory named by comps[0, count) below `rootfd` without
// following symlinks. Returns an invalid descriptor when any component is
// absent, a symlink or not a directory.
UniqueFd open_dir_path(int rootfd, const std::vector<std::string>& comps, size_t count);

// Removes `name` from `dirfd`, a directory with everything below it,
// without following symlinks. Absence is not an error. Throws Error naming
// `display` on failure.
// The names in the open directory `dirfd` (not "." or ".."), sorted
// bytewise. Throws Error naming `display` when it cannot be read.
std::vector<std::string> sorted_names(int dirfd, const std::string& display);

void remove_tree_at(int dirfd, const std::string& name, const std::string& display);

// Whether anything in the layer rooted at `rootfd` hides the lower layers at
// comps[0, count): an existing directory on the way is opaque, or a
// component exists as a non-directory (a whiteout included). The opaque
// mark of a layer root means nothing (overlayfs ignores it there).
bool layer_hides_lower(int rootfd, const std::vector<std::string>& comps, size_t count);

// Lookups in a lower chain whose answers are re-checked without following
// symlinks. MergedView resolves a path by name; a symlink in a lower layer
// could then redirect the final lstat. A LowerChain re-opens the hit from
// its layer root component by component and only answers when the same
// inode is found that way.
class LowerChain {
  public:
    explicit LowerChain(std::vector<std::filesystem::path> layers);

    struct Hit {
        UniqueFd parent;   // the directory holding the file, in its layer
        std::string name;  // the file's name in `parent`
        struct stat st;    // lstat of the file
        size_t layer_index;
    };

    // What the lower chain holds at `rel` (non-empty, "a/b"), or nullopt.
    // Throws Error on I/O errors other than absence.
    std::optional<Hit> lookup(const std::string& rel) const;

    const MergedView& view() const { return view_; }
    bool empty() const { return view_.layers().empty(); }

  private:
    MergedView view_;
};

}  // namespace strata::codec
