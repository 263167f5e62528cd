// The copying mount mode: materialize() and capture() (see copy_mount.h).
//
// Invariants:
//   - the trees built here never hold whiteouts or trusted.overlay.* xattrs,
//     except the whiteouts and opaque marks capture() writes into a layer;
//   - directories get their final owner, mode and times only after their
//     children are in place, so a directory's times are the source's;
//   - capture() never changes `upper` in place. It builds the new layer
//     directory beside it in "<upper>.capture-tmp", fsyncs every file and
//     directory of it, swaps it with `upper` in one renameat2(RENAME_EXCHANGE)
//     and fsyncs the parent, then deletes the old tree (now at the temporary
//     name). A crash before the swap leaves the old `upper` and a partial
//     temporary tree; a crash after it leaves the new `upper` and the old tree
//     at the temporary name. Either way the next capture() deletes the
//     temporary tree before it starts, so `upper` is always a complete layer.
#include "engine/copy_mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/capture_plan.h"
#include "engine/error.h"
#include "engine/file_copy.h"
#include "engine/merged_view.h"
#include "engine/overlay_format.h"

namespace strata {

namespace {

std::string join(const std::string& rel, const std::string& name) {
    return rel.empty() ? name : rel + "/" + name;
}

void require_dir(const std::filesystem::path& p, const std::string& what) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw_errno(what + " " + p.string() + " is not usable");
    if (!S_ISDIR(st.st_mode)) throw Error(what + " " + p.string() + " is not a directory");
}

void require_empty(int fd, const std::filesystem::path& p) {
    int dup = ::dup(fd);
    if (dup < 0) throw_errno("cannot read directory " + p.string());
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
        ::close(dup);
        throw_errno("cannot read directory " + p.string());
    }
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") empty = false;
    }
    ::closedir(d);
    if (!empty) throw Error("materialize target " + p.string() + " is not empty");
}

// Copies the merged directory `rel` of `view` into the open directory `fd`.
// LIMITATION: every entry is looked up from the top of the chain again, so
// a copy costs O(depth x layers) system calls per entry; carrying the set of
// layers that still contribute to a directory down the walk would lift it.
void fill_dir(const MergedView& view, LinkingCopier& copier, const std::string& rel, int fd) {
    for (const std::string& name : view.list(rel)) {
        std::string child = join(rel, name);
        std::optional<MergedView::Hit> hit = view.lookup(child);
        if (!hit) continue;
        if (S_ISDIR(hit->st.st_mode)) {
            ScopedFd sub = make_dir(fd, name, child);
            fill_dir(view, copier, child, sub.get());
            apply_dir_metadata(sub.get(), hit->real_path, hit->st, child, {});
        } else {
            copier.place(hit->real_path, hit->st, fd, name, child);
        }
    }
}

std::filesystem::path clean_path(const std::filesystem::path& p) {
    std::filesystem::path c = std::filesystem::absolute(p).lexically_normal();
    if (c.filename().empty()) c = c.parent_path();
    return c;
}

void remove_tree(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
    if (ec) throw Error("cannot remove " + p.string() + ": " + ec.message());
}

// One directory of the new layer that is still being filled.
struct OpenDir {
    std::string rel;
    ScopedFd fd;
    bool opaque;
};

void finish_dir(const std::filesystem::path& mounted, const OpenDir& d) {
    std::filesystem::path src = d.rel.empty() ? mounted : mounted / d.rel;
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0) throw_errno("cannot stat " + src.string());
    std::string display = d.rel.empty() ? "the layer root" : d.rel;
    if (d.opaque) set_opaque(d.fd.get(), display);
    apply_dir_metadata(d.fd.get(), src, st, display, {.sync = true});
}

std::string parent_of(const std::string& rel) {
    size_t slash = rel.rfind('/');
    return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

// Writes the planned entries into the empty directory `tmp`, durably.
void write_layer(const std::filesystem::path& mounted, const std::vector<UpperEntry>& plan,
                 const std::filesystem::path& tmp) {
    ScopedFd root = open_dir(tmp);
    LinkingCopier copier(root.get(), {.sync = true});
    std::vector<OpenDir> open;
    open.push_back({"", open_dir(tmp), false});

    for (const UpperEntry& e : plan) {
        std::string parent = parent_of(e.rel);
        while (open.size() > 1 && open.back().rel != parent) {
            finish_dir(mounted, open.back());
            open.pop_back();
        }
        if (open.back().rel != parent) throw Error("capture plan lists " + e.rel + " early");
        int dirfd = open.back().fd.get();
        std::string name = e.rel.substr(parent.empty() ? 0 : parent.size() + 1);

        if (e.kind == UpperEntry::Kind::kWhiteout) {
            make_whiteout(dirfd, name.c_str(), e.rel);
        } else if (e.kind == UpperEntry::Kind::kCopy) {
            struct stat st;
            std::filesystem::path src = mounted / e.rel;
            if (::lstat(src.c_str(), &st) != 0) throw_errno("cannot stat " + src.string());
            if (S_ISDIR(st.st_mode) || is_whiteout(st)) {
                throw Error("cannot capture " + src.string() + ": it changed during capture");
            }
            copier.place(src, st, dirfd, name, e.rel);
        } else {
            bool opaque = e.kind == UpperEntry::Kind::kOpaqueDir;
            open.push_back({e.rel, make_dir(dirfd, name, e.rel), opaque});
        }
    }
    while (!open.empty()) {
        finish_dir(mounted, open.back());
        open.pop_back();
    }
}

// Atomically puts the complete tree `tmp` in the place of `upper`, leaving
// the old tree at `tmp`.
void swap_into_place(const std::filesystem::path& tmp, const std::filesystem::path& upper) {
    ScopedFd parent = open_dir(upper.parent_path());
    // LIMITATION: needs a file system with RENAME_EXCHANGE (ext4, xfs, btrfs,
    // tmpfs have it); a two-rename fallback with a recovery step would lift it.
    if (::renameat2(parent.get(), tmp.filename().c_str(), parent.get(), upper.filename().c_str(),
                    RENAME_EXCHANGE) != 0) {
        throw_errno("cannot swap the captured layer " + tmp.string() + " into " + upper.string());
    }
    if (::fsync(parent.get()) != 0) throw_errno("cannot fsync " + upper.parent_path().string());
}

}  // namespace

void materialize(const std::vector<std::filesystem::path>& layers,
                 const std::filesystem::path& dest) {
    for (const auto& layer : layers) require_dir(layer, "layer directory");
    ScopedFd root = open_dir(dest);
    require_empty(root.get(), dest);

    MergedView view(layers);
    std::optional<MergedView::Hit> top = view.lookup("");
    if (!top) return;
    try {
        LinkingCopier copier(root.get(), {});
        fill_dir(view, copier, "", root.get());
        apply_dir_metadata(root.get(), top->real_path, top->st, dest.string(), {});
    } catch (const Error& e) {
        throw Error("materialize into " + dest.string() + " failed: " + e.what());
    }
    spdlog::debug("materialize: {} layers into {}", layers.size(), dest.string());
}

void capture(const std::filesystem::path& mounted, const std::vector<std::filesystem::path>& lower,
             const std::filesystem::path& upper) {
    std::filesystem::path up = clean_path(upper);
    require_dir(mounted, "mounted tree");
    require_dir(up, "layer directory");
    for (const auto& layer : lower) require_dir(layer, "layer directory");
    std::filesystem::path tmp = up.parent_path() / (up.filename().string() + ".capture-tmp");

    // A leftover of an interrupted capture: either half a new layer or the
    // old one after the swap. Neither is needed.
    remove_tree(tmp);
    MergedView view(lower);
    std::vector<UpperEntry> plan;
    try {
        plan = plan_capture(mounted, view);
        if (::mkdir(tmp.c_str(), 0700) != 0) throw_errno("cannot create " + tmp.string());
        write_layer(mounted, plan, tmp);
        swap_into_place(tmp, up);
    } catch (const Error& e) {
        std::error_code ec;
        std::filesystem::remove_all(tmp, ec);
        throw Error("capture of " + mounted.string() + " into " + up.string() +
                    " failed: " + e.what());
    }

    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    if (ec) {
        spdlog::warn("capture: cannot remove the old layer tree {}: {} (removed next time)",
                     tmp.string(), ec.message());
    }
    spdlog::debug("capture: {} entries from {} into {}", plan.size(), mounted.string(),
                  up.string());
}

}  // namespace strata
