// Merged lookups over a chain of layer directories (see merged_view.h).
//
// Invariant: every lookup walks from the layer's own descriptor one
// component at a time; no path below a layer root is handed to a system
// call that resolves it.
#include "engine/merged_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "engine/error.h"
#include "engine/overlay_format.h"
#include "engine/safe_path.h"

namespace strata {

namespace {

using codec::UniqueFd;

// What one layer says about a relative path.
struct Probe {
    bool present = false;  // the layer holds `rel` itself (st is valid)
    bool hides = false;    // a proper ancestor in this layer hides farther layers
    struct stat st {};
    UniqueFd dir;  // `rel` itself, opened, when asked for and it is a directory
};

// The layer directory `layer`, opened; invalid when it does not exist.
UniqueFd open_layer(const std::filesystem::path& layer) {
    UniqueFd fd(::open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() && errno != ENOENT && errno != ENOTDIR) {
        throw_errno("open " + layer.string());
    }
    return fd;
}

// fstatat without following; returns false when the name is absent.
// `display()` names the path in the error.
template <typename Display>
bool stat_at(int dirfd, const std::string& name, struct stat& st, const Display& display) {
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    throw_errno("lstat " + display());
}

// Looks at `rel` in `layer` one component at a time from the layer's
// descriptor, so no symlink of the layer is ever followed and no path
// longer than one component reaches a system call (deep trees work): a
// proper ancestor that is a non-directory (symlinks and whiteouts included)
// hides the path and everything below it in farther layers; an opaque
// proper ancestor hides farther layers but not this one. The kernel ignores
// the opaque mark on a layer's root, and so does this.
Probe probe(const std::filesystem::path& layer, const std::string& rel, bool open_dir = false) {
    Probe r;
    UniqueFd cur = open_layer(layer);
    if (!cur.valid()) return r;
    auto display = [&] { return (layer / rel).string(); };

    // Components one at a time (`rel` is normalised: no empty, "." or ".."
    // components); `name` ends up as the last one.
    std::string name;
    size_t pos = 0;
    while (pos < rel.size()) {
        size_t slash = rel.find('/', pos);
        size_t end = slash == std::string::npos ? rel.size() : slash;
        name.assign(rel, pos, end - pos);
        pos = end + 1;
        if (name.empty() || name == "." || name == "..") {
            throw Error("lstat " + display() + ": not a normalised path");
        }
        if (slash == std::string::npos) break;
        struct stat st;
        if (!stat_at(cur.get(), name, st, display)) return r;
        if (!S_ISDIR(st.st_mode)) {
            r.hides = true;
            return r;
        }
        UniqueFd next = codec::open_dir_at(cur.get(), name);
        if (!next.valid()) throw_errno("open " + display());
        if (is_opaque(next.get())) r.hides = true;
        cur = std::move(next);
        name.clear();
    }
    if (name.empty()) {
        if (::fstat(cur.get(), &r.st) != 0) throw_errno("stat " + layer.string());
        r.present = true;
        if (open_dir) r.dir = std::move(cur);
        return r;
    }
    r.present = stat_at(cur.get(), name, r.st, display);
    if (r.present && open_dir && S_ISDIR(r.st.st_mode)) {
        r.dir = codec::open_dir_at(cur.get(), name);
        if (!r.dir.valid()) throw_errno("open " + display());
    }
    return r;
}

// The names in the open directory `fd` (not "." or "..").
std::vector<std::string> names_in(int fd, const std::filesystem::path& display) {
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throw_errno("opendir " + display.string());
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
        ::close(dup);
        throw_errno("opendir " + display.string());
    }
    std::vector<std::string> out;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(std::move(name));
    }
    ::closedir(d);
    return out;
}

}  // namespace

MergedView::MergedView(std::vector<std::filesystem::path> layers) : layers_(std::move(layers)) {}

std::optional<MergedView::Hit> MergedView::lookup(const std::string& rel) const {
    for (size_t i = 0; i < layers_.size(); ++i) {
        Probe p = probe(layers_[i], rel);
        if (p.present) {
            if (is_whiteout(p.st)) return std::nullopt;
            return Hit{rel.empty() ? layers_[i] : layers_[i] / rel, i, p.st};
        }
        if (p.hides) return std::nullopt;
    }
    return std::nullopt;
}

std::vector<std::string> MergedView::list(const std::string& rel) const {
    std::set<std::string> names;
    std::set<std::string> hidden;
    for (const auto& layer : layers_) {
        Probe p = probe(layer, rel, true);
        if (!p.present) {
            if (p.hides) break;
            continue;
        }
        if (!S_ISDIR(p.st.st_mode)) break;
        std::filesystem::path dir = rel.empty() ? layer : layer / rel;
        for (std::string& name : names_in(p.dir.get(), dir)) {
            if (hidden.count(name)) continue;
            struct stat cst;
            if (!stat_at(p.dir.get(), name, cst, [&] { return (dir / name).string(); })) continue;
            if (is_whiteout(cst)) {
                hidden.insert(name);
                continue;
            }
            hidden.insert(name);  // nearer layers win; farther copies are shadowed
            names.insert(std::move(name));
        }
        if (p.hides || (!rel.empty() && is_opaque(p.dir.get()))) break;
    }
    return {names.begin(), names.end()};
}

}  // namespace strata
