// Parent-directory resolution for the layer being applied (see layer_dirs.h).
//
// Invariant: the kept-open descriptor always refers to the directory named
// by cached_rel_ in this layer, reached without following anything, and
// cached_hidden_ is whether this layer hides the lower chain there; any
// removal of a directory, and any change of an opaque mark, calls
// invalidate() before the descriptor could be used again.
#include "engine/layer_dirs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/overlay_format.h"

namespace strata::codec {

LayerDirs::LayerDirs(int rootfd, const LowerChain& lower, CreatedFn on_created)
    : rootfd_(rootfd), lower_(lower), on_created_(std::move(on_created)) {}

void LayerDirs::invalidate() {
    cached_ = false;
    cached_rel_.clear();
    cached_fd_.reset();
}

void LayerDirs::removed(const std::string& rel) {
    if (!cached_) return;
    if (cached_rel_ == rel || cached_rel_.rfind(rel + "/", 0) == 0) invalidate();
}

int LayerDirs::dir(const std::vector<std::string>& comps, size_t count) {
    if (count == 0) return rootfd_;
    std::string rel = join_components(comps, count);
    if (cached_ && rel == cached_rel_) return cached_fd_.get();

    // `hidden`: this layer already hides the lower chain from here down, so
    // lower metadata must not leak into directories made below this point.
    // A directory below the kept-open one is walked to from there (deep
    // trees come parent first), else from the root.
    bool hidden = lower_.empty();
    UniqueFd cur;
    size_t start = 0;
    if (cached_ && rel.size() > cached_rel_.size() &&
        rel.compare(0, cached_rel_.size(), cached_rel_) == 0 && rel[cached_rel_.size()] == '/') {
        cur = UniqueFd(::fcntl(cached_fd_.get(), F_DUPFD_CLOEXEC, 0));
        if (!cur.valid()) throw_errno("cannot duplicate the descriptor of " + cached_rel_);
        start = cached_count_;
        hidden = cached_hidden_;
    }
    invalidate();
    std::string prefix = join_components(comps, start);  // comps[0, i] once in the loop
    for (size_t i = start; i < count; ++i) {
        if (!prefix.empty()) prefix += '/';
        prefix += comps[i];
        int parent = cur.valid() ? cur.get() : rootfd_;
        UniqueFd next = open_dir_at(parent, comps[i]);
        if (next.valid()) {
            hidden = hidden || is_opaque(next.get());
            cur = std::move(next);
            continue;
        }
        int err = errno;
        struct stat st;
        if (::fstatat(parent, comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) throw_errno("cannot stat " + shown_name(prefix));
            // Below a directory the lower chain lacks, it has nothing either.
            if (!create_missing(parent, comps[i], prefix, hidden, next)) hidden = true;
        } else if (is_whiteout(st)) {
            replace_whiteout(parent, comps[i], prefix, next);
            hidden = true;
        } else if (S_ISLNK(st.st_mode)) {
            throw Error("parent '" + shown_name(prefix) + "' is a symlink, not a directory");
        } else if (!S_ISDIR(st.st_mode)) {
            throw Error("parent '" + shown_name(prefix) + "' is not a directory");
        } else {
            throw_errno("cannot open directory " + shown_name(prefix), err);
        }
        cur = std::move(next);
    }

    cached_rel_ = rel;
    cached_fd_ = std::move(cur);
    cached_count_ = count;
    cached_hidden_ = hidden;
    cached_ = true;
    return cached_fd_.get();
}

bool LayerDirs::create_missing(int parent, const std::string& name, const std::string& rel,
                               bool lower_hidden, UniqueFd& out) {
    // The lower chain's directory, if any, gives the metadata.
    uint32_t uid = 0;
    uint32_t gid = 0;
    DirMeta meta;
    Xattrs xattrs;
    bool from_lower = false;
    if (!lower_hidden) {
        std::optional<LowerChain::Hit> hit = lower_.lookup(rel);
        if (hit && S_ISDIR(hit->st.st_mode)) {
            uid = hit->st.st_uid;
            gid = hit->st.st_gid;
            meta.mode = hit->st.st_mode & 07777;
            meta.times = times_of(hit->st);
            xattrs = read_xattrs_at(hit->parent.get(), hit->name, "lower directory " + rel);
            from_lower = true;
        }
    }

    if (::mkdirat(parent, name.c_str(), 0700) != 0) {
        throw_errno("cannot create directory " + rel);
    }
    out = open_dir_at(parent, name);
    if (!out.valid()) throw_errno("cannot open directory " + rel);
    if (::fchown(out.get(), uid, gid) != 0) throw_errno("cannot change owner of " + rel);
    if (::fchmod(out.get(), meta.mode) != 0) throw_errno("cannot change mode of " + rel);
    for (const auto& [key, value] : xattrs) write_xattr_fd(out.get(), key, value, rel);
    if (from_lower) on_created_(rel, meta);
    return from_lower;
}

void LayerDirs::replace_whiteout(int parent, const std::string& name, const std::string& rel,
                                 UniqueFd& out) {
    if (::unlinkat(parent, name.c_str(), 0) != 0) throw_errno("cannot remove whiteout " + rel);
    if (::mkdirat(parent, name.c_str(), 0700) != 0) {
        throw_errno("cannot create directory " + rel);
    }
    out = open_dir_at(parent, name);
    if (!out.valid()) throw_errno("cannot open directory " + rel);
    if (::fchmod(out.get(), 0755) != 0) throw_errno("cannot change mode of " + rel);
    set_opaque(out.get(), rel);
}

}  // namespace strata::codec
