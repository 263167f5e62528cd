// apply_layer_tar: regular files, symlinks, devices, fifos and hard links.
//
// Invariants:
//   - a new file is always created afresh (O_CREAT | O_EXCL | O_NOFOLLOW)
//     after any earlier entry at its path is removed, so no write can go
//     through a symlink or into a hard link's other names;
//   - metadata order is owner, then mode (chown clears setuid/setgid), then
//     xattrs (chown clears security.capability), then times;
//   - a hard link only ever joins a file of this layer; a target that only
//     the lower chain has is first copied up into this layer.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/layer_applier.h"
#include "engine/overlay_format.h"

namespace strata::codec {

void Applier::apply_file(const TarEntry& e, const Comps& comps) {
    // A plain entry cannot outgrow the stream limit; a sparse one could
    // claim any size, so its size is held to the same limit.
    if (static_cast<uint64_t>(e.size) > limits_.max_bytes) {
        std::string limit = std::to_string(limits_.max_bytes);
        throw Error("size " + std::to_string(e.size) + " is more than " + limit +
                    " uncompressed tar bytes (limit " + limit + ")");
    }
    uint64_t mapped = check_sparse_map(e);
    int parent = prepare_slot(comps);
    const std::string& name = comps.back();
    std::string rel = join_components(comps, comps.size());
    UniqueFd fd(
        ::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) throw_errno("cannot create file");

    // Runs of content at their offsets; the gaps of sparse entries stay holes.
    const void* buf = nullptr;
    size_t len = 0;
    int64_t offset = 0;
    uint64_t got = 0;
    for (;;) {
        try {
            if (!in_->read_block(&buf, &len, &offset)) break;
        } catch (const Error& err) {
            throw Error(std::to_string(got) + " of " + std::to_string(e.size) +
                        " content bytes read: " + err.what());
        }
        if (offset < 0 || static_cast<uint64_t>(offset) + len > static_cast<uint64_t>(e.size)) {
            throw Error("content runs past the entry size");
        }
        write_all_at(fd.get(), buf, len, offset, rel);
        got += len;
        content_bytes_ += len;
    }
    if (!e.sparse.empty() && got != mapped) {
        throw Error("the sparse map names " + std::to_string(mapped) +
                    " bytes of data but the entry holds " + std::to_string(got));
    }
    if (::ftruncate(fd.get(), e.size) != 0) throw_errno("cannot set the file size");
    apply_meta_fd(fd.get(), e.uid, e.gid, e.mode, content_xattrs(e.xattrs), e.times, rel);
}

uint64_t Applier::check_sparse_map(const TarEntry& e) {
    // Runs in order, apart, inside the file: what tar writers produce and
    // what other readers insist on.
    uint64_t end = 0;
    uint64_t total = 0;
    for (const auto& [offset, length] : e.sparse) {
        if (offset < 0 || length < 0 || static_cast<uint64_t>(offset) < end ||
            static_cast<uint64_t>(length) > static_cast<uint64_t>(e.size) ||
            static_cast<uint64_t>(offset) > static_cast<uint64_t>(e.size) - length) {
            throw Error("the sparse map is out of order or runs past the entry size (run " +
                        std::to_string(offset) + "+" + std::to_string(length) + ", size " +
                        std::to_string(e.size) + ")");
        }
        end = static_cast<uint64_t>(offset + length);
        total += static_cast<uint64_t>(length);
    }
    return total;
}

void Applier::apply_symlink(const TarEntry& e, const Comps& comps) {
    if (e.link.empty()) throw Error("symlink has an empty target");
    if (e.link.size() > kMaxPath) {
        throw Error("the symlink target is " + std::to_string(e.link.size()) +
                    " bytes, more than the " + std::to_string(kMaxPath) + " a path may have");
    }
    int parent = prepare_slot(comps);
    const std::string& name = comps.back();
    if (::symlinkat(e.link.c_str(), parent, name.c_str()) != 0) {
        throw_errno("cannot create symlink");
    }
    apply_meta_at(parent, name, e.uid, e.gid, e.mode, false, content_xattrs(e.xattrs), e.times,
                  join_components(comps, comps.size()));
}

void Applier::apply_node(const TarEntry& e, const Comps& comps) {
    mode_t type = e.kind == TarEntry::Kind::CharDev    ? S_IFCHR
                  : e.kind == TarEntry::Kind::BlockDev ? S_IFBLK
                                                       : S_IFIFO;
    dev_t dev = type == S_IFIFO ? 0 : makedev(e.dev_major, e.dev_minor);
    int parent = prepare_slot(comps);
    const std::string& name = comps.back();
    if (::mknodat(parent, name.c_str(), type | (e.mode & 07777), dev) != 0) {
        throw_errno(type == S_IFIFO ? "cannot create fifo" : "cannot create device node");
    }
    apply_meta_at(parent, name, e.uid, e.gid, e.mode, true, content_xattrs(e.xattrs), e.times,
                  join_components(comps, comps.size()));
}

void Applier::apply_hardlink(const TarEntry& e, const Comps& comps, FileRecord& rec) {
    Comps tcomps;
    try {
        tcomps = split_entry_path(e.link);
    } catch (const Error&) {
        throw Error("hard link target '" + shown_name(e.link) + "' escapes the layer");
    }
    if (tcomps.empty()) throw Error("hard link target is the layer root");
    std::string trel = join_components(tcomps, tcomps.size());
    check_name_length(tcomps, trel, "the hard link target");
    std::string rel = join_components(comps, comps.size());
    rec.link_target = trel;
    if (trel == rel) throw Error("hard link to itself");

    UniqueFd tdir = link_target_dir(tcomps, trel);
    int parent = prepare_slot(comps);
    if (::linkat(tdir.get(), tcomps.back().c_str(), parent, comps.back().c_str(), 0) != 0) {
        throw_errno("cannot link to '" + shown_name(trel) + "'");
    }
}

UniqueFd Applier::link_target_dir(const Comps& tcomps, const std::string& trel) {
    const std::string& tname = tcomps.back();
    UniqueFd tdir = open_dir_path(root_.get(), tcomps, tcomps.size() - 1);
    if (tdir.valid()) {
        struct stat st;
        if (::fstatat(tdir.get(), tname.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (is_whiteout(st))
                throw Error("hard link target '" + shown_name(trel) + "' is deleted");
            if (S_ISDIR(st.st_mode)) {
                throw Error("hard link target '" + shown_name(trel) + "' is a directory");
            }
            return tdir;
        }
        if (errno != ENOENT) throw_errno("cannot stat hard link target '" + trel + "'");
    }

    // Not in this layer: the lower chain's file is copied up first, unless
    // this layer hides the lower chain there.
    std::optional<LowerChain::Hit> hit;
    if (!layer_hides_lower(root_.get(), tcomps, tcomps.size() - 1)) hit = lower_.lookup(trel);
    if (!hit) throw Error("hard link target '" + shown_name(trel) + "' does not exist");
    if (S_ISDIR(hit->st.st_mode))
        throw Error("hard link target '" + shown_name(trel) + "' is a directory");
    int parent = dirs_.dir(tcomps, tcomps.size() - 1);
    copy_up(*hit, parent, tname, trel);
    UniqueFd own(::fcntl(parent, F_DUPFD_CLOEXEC, 0));
    if (!own.valid()) throw_errno("cannot duplicate a directory descriptor");
    return own;
}

void Applier::copy_up(const LowerChain::Hit& hit, int parent, const std::string& name,
                      const std::string& trel) {
    const struct stat& st = hit.st;
    std::string display = "copy of '" + shown_name(trel) + "' from the lower chain";
    Xattrs xattrs = read_xattrs_at(hit.parent.get(), hit.name, display);
    FileTimes times = times_of(st);
    uint32_t mode = st.st_mode & 07777;

    if (S_ISREG(st.st_mode)) {
        UniqueFd in(
            ::openat(hit.parent.get(), hit.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!in.valid()) throw_errno("cannot open " + display);
        UniqueFd out(::openat(parent, name.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out.valid()) throw_errno("cannot create " + display);
        copy_file_content(in.get(), out.get(), st.st_size, display);
        content_bytes_ += static_cast<uint64_t>(st.st_size);
        apply_meta_fd(out.get(), st.st_uid, st.st_gid, mode, xattrs, times, display);
    } else if (S_ISLNK(st.st_mode)) {
        std::string target = read_symlink_at(hit.parent.get(), hit.name, display);
        if (::symlinkat(target.c_str(), parent, name.c_str()) != 0) {
            throw_errno("cannot create " + display);
        }
        apply_meta_at(parent, name, st.st_uid, st.st_gid, mode, false, xattrs, times, display);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
        if (::mknodat(parent, name.c_str(), st.st_mode & (S_IFMT | 07777), st.st_rdev) != 0) {
            throw_errno("cannot create " + display);
        }
        apply_meta_at(parent, name, st.st_uid, st.st_gid, mode, true, xattrs, times, display);
    } else {
        throw Error("hard link target '" + shown_name(trel) +
                    "' cannot be copied from the lower chain");
    }
}

}  // namespace strata::codec
