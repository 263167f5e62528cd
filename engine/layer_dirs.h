// The directories of a layer being applied: finding an entry's parent
// directory, creating the ones the tar does not carry.
//
// LayerDirs walks from the layer root one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY) (safe_path.h), so nothing an archive
// names is followed out of the layer. A missing directory is created with
// the owner, mode, xattrs and times the lower chain has for it (0755 root
// when the lower chain has no directory there, or when this layer already
// hides the lower one at that point); a whiteout made earlier by this same
// layer becomes an opaque directory; a symlink or any other non-directory
// on the way is an Error.
//
// The last parent directory is kept open, because tar entries of one
// directory come together, and a directory below it is reached from it;
// invalidate() must be called whenever a directory of the layer is removed
// or replaced (removed() does so only when needed) or an opaque mark is set.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/file_meta.h"
#include "engine/safe_path.h"

namespace strata::codec {

// Metadata applied to a directory once every entry is in (creating entries
// inside a directory changes its mtime, so times are set last).
struct DirMeta {
    uint32_t mode = 0755;
    FileTimes times;
};

class LayerDirs {
public:
    // `rootfd` (borrowed) is the layer root; `lower` its parent chain.
    // `on_created` receives each directory it creates, with the metadata to
    // apply at the end ("a/b", meta).
    using CreatedFn = std::function<void(const std::string& rel, const DirMeta& meta)>;
    LayerDirs(int rootfd, const LowerChain& lower, CreatedFn on_created);
    LayerDirs(const LayerDirs&) = delete;
    LayerDirs& operator=(const LayerDirs&) = delete;

    // The directory comps[0, count) of the layer, created as described
    // above when missing. The descriptor is borrowed and valid until the
    // next call or invalidate(). Throws Error naming the offending
    // component when a symlink or non-directory is in the way.
    int dir(const std::vector<std::string>& comps, size_t count);

    // Forgets the kept-open directory.
    void invalidate();

    // Tells that the directory `rel` ("a/b") and everything below it was
    // removed; forgets the kept-open directory if it was among them.
    void removed(const std::string& rel);

private:
    // Makes the missing directory `name` in `parent` (the layer's `rel`);
    // true when the lower chain has a directory there (its metadata was used).
    bool create_missing(int parent, const std::string& name, const std::string& rel,
                        bool lower_hidden, UniqueFd& out);
    void replace_whiteout(int parent, const std::string& name, const std::string& rel,
                          UniqueFd& out);

    int rootfd_;
    const LowerChain& lower_;
    CreatedFn on_created_;
    std::string cached_rel_;
    UniqueFd cached_fd_;
    size_t cached_count_ = 0;     // components in cached_rel_
    bool cached_hidden_ = false;  // the lower chain is hidden at cached_rel_
    bool cached_ = false;
};

}  // namespace strata::codec
