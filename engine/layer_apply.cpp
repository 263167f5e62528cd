// apply_layer_tar: the driver loop, directories, whiteouts and opaque
// markers (files, links and devices are in layer_apply_nodes.cpp).
//
// Invariants kept while applying:
//   - every entry lands at the path it names inside the layer, reached
//     component by component without following symlinks;
//   - a whiteout only ever hides the lower chain: if this layer already has
//     the name, the whiteout leaves it alone; a whiteout or opaque marker
//     whose directory the merged tree does not have changes nothing;
//   - an opaque marker only sets the opaque xattr on its directory; entries
//     of that directory in this layer, before or after it, stay (at the
//     layer root, where overlayfs ignores the mark, it whites out each lower
//     root entry instead);
//   - a directory replacing a non-directory (or a whiteout) of this layer is
//     made opaque, since the earlier entry already hid the lower one;
//   - directory modes and times are set once, after the last entry;
//   - no applied entry carries an xattr that xattr_drop_reason() names.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "engine/error.h"
#include "engine/layer_applier.h"
#include "engine/layer_codec.h"
#include "engine/overlay_format.h"

namespace strata {

namespace codec {

namespace {

constexpr const char kAufsMetaPrefix[] = ".wh..wh.";

char type_letter(TarEntry::Kind kind) {
    switch (kind) {
        case TarEntry::Kind::File:
            return 'f';
        case TarEntry::Kind::Dir:
            return 'd';
        case TarEntry::Kind::Symlink:
            return 'l';
        case TarEntry::Kind::HardLink:
            return 'h';
        case TarEntry::Kind::CharDev:
            return 'c';
        case TarEntry::Kind::BlockDev:
            return 'b';
        case TarEntry::Kind::Fifo:
            return 'p';
    }
    return 'f';
}

FileRecord record_of(const TarEntry& e, const std::string& path) {
    FileRecord rec;
    rec.path = path;
    rec.type = type_letter(e.kind);
    rec.mode = e.mode;
    rec.uid = e.uid;
    rec.gid = e.gid;
    rec.size = e.kind == TarEntry::Kind::File ? static_cast<uint64_t>(e.size) : 0;
    rec.mtime = e.times.mtime.tv_sec;
    if (e.kind == TarEntry::Kind::Symlink) rec.link_target = e.link;
    if (e.kind == TarEntry::Kind::CharDev || e.kind == TarEntry::Kind::BlockDev) {
        rec.dev_major = e.dev_major;
        rec.dev_minor = e.dev_minor;
    }
    rec.xattrs_json = xattrs_to_json(content_xattrs(e.xattrs));
    return rec;
}

bool starts_with(const std::string& s, const char* prefix) {
    return s.rfind(prefix, 0) == 0;
}

}  // namespace

const char* xattr_drop_reason(const std::string& name) {
    if (starts_with(name, "trusted.overlay.") || starts_with(name, "user.overlay.")) {
        return "overlayfs would read it as layer structure";
    }
    if (is_host_xattr(name)) {
        return "security labels and integrity data are the host's to set";
    }
    return nullptr;
}

Xattrs content_xattrs(const Xattrs& xattrs) {
    Xattrs out;
    for (const auto& kv : xattrs) {
        if (!is_overlay_xattr(kv.first)) out.push_back(kv);
    }
    return out;
}

Applier::Applier(const std::filesystem::path& layer_dir,
                 const std::vector<std::filesystem::path>& lower,
                 const std::function<void(const FileRecord&)>& on_entry, const ApplyLimits& limits)
    : root_(open_root_dir(layer_dir)),
      lower_(lower),
      dirs_(root_.get(), lower_,
            [this](const std::string& rel, const DirMeta& meta) { deferred_[rel] = meta; }),
      on_entry_(on_entry),
      limits_(limits) {}

ApplyResult Applier::run(ByteSource& src) {
    TarInput in(src, limits_);
    in_ = &in;
    ApplyResult result;
    TarEntry e;
    while (in.next(e)) {
        if (++result.entries > limits_.max_entries) {
            std::string limit = std::to_string(limits_.max_entries);
            throw Error("layer tar has more than " + limit + " entries (limit " + limit + ")");
        }
        std::string shown = shown_name(e.path);
        FileRecord rec;
        bool applied = false;
        try {
            Comps comps = split_entry_path(e.path);
            std::string rel = comps.empty() ? "." : join_components(comps, comps.size());
            if (!comps.empty()) shown = shown_name(rel);
            check_name_length(comps, rel, "the name");
            drop_host_xattrs(e, shown);
            rec = record_of(e, rel);
            applied = apply(e, comps, rec);
        } catch (const Error& err) {
            throw Error("layer tar entry '" + shown + "': " + err.what());
        }
        if (applied && on_entry_) on_entry_(rec);
    }
    in.finish();
    finish_dirs();
    in_ = nullptr;
    if (dropped_xattrs_ > kDropWarnings) {
        spdlog::warn(
            "layer tar: dropped {} xattrs in all (trusted.overlay.*, user.overlay.*, "
            "security.* other than security.capability)",
            dropped_xattrs_);
    }

    result.diff_digest = in.digest();
    result.tar_bytes = in.tar_bytes();
    result.content_bytes = content_bytes_;
    return result;
}

void Applier::drop_host_xattrs(TarEntry& e, const std::string& shown) {
    auto dropped = [&](const std::pair<std::string, std::string>& kv) {
        const char* why = xattr_drop_reason(kv.first);
        if (why == nullptr) return false;
        if (++dropped_xattrs_ <= kDropWarnings) {
            spdlog::warn("layer tar entry '{}': dropped xattr {} ({})", shown, shown_name(kv.first),
                         why);
        }
        return true;
    };
    e.xattrs.erase(std::remove_if(e.xattrs.begin(), e.xattrs.end(), dropped), e.xattrs.end());
}

bool Applier::apply(const TarEntry& e, const Comps& comps, FileRecord& rec) {
    if (comps.empty()) {
        if (e.kind != TarEntry::Kind::Dir) throw Error("only a directory can be the layer root");
        apply_root(e);
        return true;
    }
    const std::string& base = comps.back();
    if (base == kOpaqueMarker) {
        rec.type = 'o';
        apply_opaque(comps);
        return true;
    }
    // Other ".wh..wh." names are aufs bookkeeping, not layer content.
    if (std::any_of(comps.begin(), comps.end(),
                    [](const std::string& c) { return starts_with(c, kAufsMetaPrefix); })) {
        spdlog::debug("layer tar: skipped aufs metadata entry {}", rec.path);
        return false;
    }
    if (starts_with(base, kWhiteoutPrefix)) {
        rec.type = 'w';
        apply_whiteout(e, comps);
        return true;
    }
    switch (e.kind) {
        case TarEntry::Kind::Dir:
            apply_dir(e, comps);
            break;
        case TarEntry::Kind::File:
            apply_file(e, comps);
            break;
        case TarEntry::Kind::Symlink:
            apply_symlink(e, comps);
            break;
        case TarEntry::Kind::HardLink:
            apply_hardlink(e, comps, rec);
            break;
        case TarEntry::Kind::CharDev:
        case TarEntry::Kind::BlockDev:
        case TarEntry::Kind::Fifo:
            apply_node(e, comps);
            break;
    }
    return true;
}

void Applier::apply_root(const TarEntry& e) {
    if (::fchown(root_.get(), e.uid, e.gid) != 0) throw_errno("cannot change owner");
    replace_xattrs_fd(root_.get(), content_xattrs(e.xattrs), "the layer root");
    deferred_[""] = DirMeta{e.mode, e.times};
}

void Applier::apply_dir(const TarEntry& e, const Comps& comps) {
    int parent = dirs_.dir(comps, comps.size() - 1);
    const std::string& name = comps.back();
    std::string rel = join_components(comps, comps.size());

    struct stat st;
    bool exists = ::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) throw_errno("cannot stat");
    bool replace = exists && !S_ISDIR(st.st_mode);
    if (replace && ::unlinkat(parent, name.c_str(), 0) != 0) {
        throw_errno("cannot remove the earlier entry");
    }
    if ((!exists || replace) && ::mkdirat(parent, name.c_str(), 0700) != 0) {
        throw_errno("cannot create directory");
    }
    UniqueFd fd = open_dir_at(parent, name);
    if (!fd.valid()) throw_errno("cannot open directory");
    if (replace) {
        set_opaque(fd.get(), rel);
        dirs_.invalidate();
    }

    if (::fchown(fd.get(), e.uid, e.gid) != 0) throw_errno("cannot change owner");
    if (::fchmod(fd.get(), e.mode) != 0) throw_errno("cannot change mode");
    replace_xattrs_fd(fd.get(), content_xattrs(e.xattrs), rel);
    deferred_[rel] = DirMeta{e.mode, e.times};
}

// Whether the directory a whiteout or opaque marker sits in exists in the
// tree this layer and its lower chain present. When it does not (absent
// everywhere, or hidden by this layer), the marker has nothing to hide and
// must not make a directory appear. A symlink or other non-directory of
// this layer in the way counts as existing, so that dir() reports it.
bool Applier::marker_dir_exists(const Comps& comps) {
    size_t count = comps.size() - 1;
    UniqueFd cur(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!cur.valid()) throw_errno("cannot duplicate the layer root descriptor");
    bool lower_hidden = false;
    for (size_t i = 0; i < count; ++i) {
        UniqueFd next = open_dir_at(cur.get(), comps[i]);
        if (next.valid()) {
            lower_hidden = lower_hidden || is_opaque(next.get());
            cur = std::move(next);
            continue;
        }
        struct stat st;
        if (::fstatat(cur.get(), comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            return !is_whiteout(st);
        }
        if (errno != ENOENT) throw_errno("cannot stat " + join_components(comps, i + 1));
        if (lower_hidden) return false;
        std::optional<LowerChain::Hit> hit = lower_.lookup(join_components(comps, count));
        return hit && S_ISDIR(hit->st.st_mode);
    }
    return true;
}

void Applier::apply_whiteout(const TarEntry& e, const Comps& comps) {
    std::string name = comps.back().substr(sizeof kWhiteoutPrefix - 1);
    if (name.empty() || name == "." || name == "..") throw Error("whiteout names no file");
    if (!marker_dir_exists(comps)) return;
    int parent = dirs_.dir(comps, comps.size() - 1);
    std::string rel = join_components(comps, comps.size() - 1);
    rel = rel.empty() ? name : rel + "/" + name;

    // A whiteout hides lower layers only; this layer's own entry stays.
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return;
    if (errno != ENOENT) throw_errno("cannot stat " + rel);
    make_whiteout(parent, name.c_str(), rel);
    struct timespec ts[2] = {e.times.atime, e.times.mtime};
    if (::utimensat(parent, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("cannot set times of whiteout " + rel);
    }
}

void Applier::apply_opaque(const Comps& comps) {
    if (!marker_dir_exists(comps)) return;
    int dir = dirs_.dir(comps, comps.size() - 1);
    if (comps.size() > 1) {
        set_opaque(dir, join_components(comps, comps.size() - 1));
        dirs_.invalidate();
        return;
    }

    // overlayfs ignores the opaque mark on a layer root, so an opaque root
    // is written as a whiteout for every lower root entry this layer does
    // not have (yet); later entries replace those whiteouts as usual.
    for (const std::string& name : lower_.view().list("")) {
        struct stat st;
        if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
        if (errno != ENOENT) throw_errno("cannot stat " + name);
        make_whiteout(dir, name.c_str(), name);
    }
}

int Applier::prepare_slot(const Comps& comps) {
    int parent = dirs_.dir(comps, comps.size() - 1);
    const std::string& name = comps.back();
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return parent;
        throw_errno("cannot stat");
    }
    if (!S_ISDIR(st.st_mode)) {
        if (::unlinkat(parent, name.c_str(), 0) != 0)
            throw_errno("cannot remove the earlier entry");
        return parent;
    }

    // A directory of this layer goes, with everything below it.
    std::string rel = join_components(comps, comps.size());
    remove_tree_at(parent, name, rel);
    dirs_.removed(rel);
    deferred_.erase(rel);
    std::string prefix = rel + "/";
    auto it = deferred_.lower_bound(prefix);
    while (it != deferred_.end() && starts_with(it->first, prefix.c_str())) {
        it = deferred_.erase(it);
    }
    return parent;
}

void Applier::finish_dirs() {
    // Entries come sorted, so a directory often lies below the previous
    // one; it is then reached from there rather than from the root.
    std::string prev_rel;
    UniqueFd prev;
    for (const auto& [rel, meta] : deferred_) {
        UniqueFd fd;
        size_t from = 0;  // where the components still to walk start in `rel`
        if (prev.valid() && !prev_rel.empty() && rel.size() > prev_rel.size() &&
            rel.compare(0, prev_rel.size(), prev_rel) == 0 && rel[prev_rel.size()] == '/') {
            fd = UniqueFd(::fcntl(prev.get(), F_DUPFD_CLOEXEC, 0));
            from = prev_rel.size() + 1;
        } else {
            fd = UniqueFd(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
        }
        while (fd.valid() && from < rel.size()) {
            size_t slash = std::min(rel.find('/', from), rel.size());
            fd = open_dir_at(fd.get(), rel.substr(from, slash - from));
            from = slash + 1;
        }
        if (!fd.valid()) continue;  // replaced later by a non-directory
        std::string display = rel.empty() ? "." : shown_name(rel);
        if (::fchmod(fd.get(), meta.mode) != 0) {
            throw_errno("layer tar entry '" + display + "': cannot change mode");
        }
        struct timespec ts[2] = {meta.times.atime, meta.times.mtime};
        if (::futimens(fd.get(), ts) != 0) {
            throw_errno("layer tar entry '" + display + "': cannot set times");
        }
        prev_rel = rel;
        prev = std::move(fd);
    }
}

}  // namespace codec

ApplyResult apply_layer_tar(ByteSource& src, const std::filesystem::path& layer_dir,
                            const std::vector<std::filesystem::path>& lower,
                            const std::function<void(const FileRecord&)>& on_entry,
                            const ApplyLimits& limits) {
    codec::Applier applier(layer_dir, lower, on_entry, limits);
    return applier.run(src);
}

}  // namespace strata
