#include "engine/merged_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "engine/error.h"
#include "engine/overlay_format.h"

namespace strata {

namespace {

// lstat of `p`; returns false when the path is absent.
bool lstat_path(const std::filesystem::path& p, struct stat& st) {
    if (::lstat(p.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    throw_errno("lstat " + p.string());
}

bool dir_is_opaque(const std::filesystem::path& p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    bool opaque = is_opaque(fd);
    ::close(fd);
    return opaque;
}

// What one layer says about a relative path.
struct Probe {
    bool present = false;  // the layer holds `rel` itself (st is valid)
    bool hides = false;    // a proper ancestor in this layer hides farther layers
    struct stat st {};
};

// Looks at `rel` in `layer` one component at a time, so that no symlink of
// the layer is ever followed: a proper ancestor that is a non-directory
// (symlinks and whiteouts included) hides the path and everything below it
// in farther layers; an opaque proper ancestor hides farther layers but not
// this one. The kernel ignores the opaque mark on a layer's root, and so
// does this.
Probe probe(const std::filesystem::path& layer, const std::string& rel) {
    Probe r;
    size_t pos = 0;
    while ((pos = rel.find('/', pos)) != std::string::npos) {
        std::filesystem::path prefix = layer / rel.substr(0, pos);
        ++pos;
        struct stat st;
        if (!lstat_path(prefix, st)) return r;
        if (!S_ISDIR(st.st_mode)) {
            r.hides = true;
            return r;
        }
        if (dir_is_opaque(prefix)) r.hides = true;
    }
    r.present = lstat_path(rel.empty() ? layer : layer / rel, r.st);
    return r;
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
        Probe p = probe(layer, rel);
        if (!p.present) {
            if (p.hides) break;
            continue;
        }
        if (!S_ISDIR(p.st.st_mode)) break;
        std::filesystem::path dir = rel.empty() ? layer : layer / rel;
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) throw_errno("opendir " + dir.string());
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == ".." || hidden.count(name)) continue;
            struct stat cst;
            if (!lstat_path(dir / name, cst)) continue;
            if (is_whiteout(cst)) {
                hidden.insert(name);
                continue;
            }
            names.insert(name);
            hidden.insert(name);  // nearer layers win; farther copies are shadowed
        }
        ::closedir(d);
        if (p.hides || (!rel.empty() && dir_is_opaque(dir))) break;
    }
    return {names.begin(), names.end()};
}

}  // namespace strata
