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

// lstat relative to a layer; returns false when the path is absent.
bool lstat_in(const std::filesystem::path& layer, const std::string& rel, struct stat& st) {
    std::filesystem::path p = rel.empty() ? layer : layer / rel;
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

// Whether layer `layer` hides everything below it at `rel`: some proper
// ancestor of `rel` in this layer is a whiteout, a non-directory, or an
// opaque directory.
bool ancestor_hides(const std::filesystem::path& layer, const std::string& rel) {
    size_t pos = 0;
    while ((pos = rel.find('/', pos)) != std::string::npos) {
        std::string prefix = rel.substr(0, pos);
        ++pos;
        struct stat st;
        if (!lstat_in(layer, prefix, st)) continue;
        if (!S_ISDIR(st.st_mode)) return true;
        if (dir_is_opaque(layer / prefix)) return true;
    }
    return false;
}

}  // namespace

MergedView::MergedView(std::vector<std::filesystem::path> layers) : layers_(std::move(layers)) {}

std::optional<MergedView::Hit> MergedView::lookup(const std::string& rel) const {
    for (size_t i = 0; i < layers_.size(); ++i) {
        struct stat st;
        if (lstat_in(layers_[i], rel, st)) {
            if (is_whiteout(st)) return std::nullopt;
            return Hit{rel.empty() ? layers_[i] : layers_[i] / rel, i, st};
        }
        if (ancestor_hides(layers_[i], rel)) return std::nullopt;
    }
    return std::nullopt;
}

std::vector<std::string> MergedView::list(const std::string& rel) const {
    std::set<std::string> names;
    std::set<std::string> hidden;
    for (const auto& layer : layers_) {
        struct stat st;
        if (!lstat_in(layer, rel, st)) {
            if (ancestor_hides(layer, rel)) break;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) break;
        std::filesystem::path dir = rel.empty() ? layer : layer / rel;
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) throw_errno("opendir " + dir.string());
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == ".." || hidden.count(name)) continue;
            struct stat cst;
            if (!lstat_in(dir, name, cst)) continue;
            if (is_whiteout(cst)) {
                hidden.insert(name);
                continue;
            }
            names.insert(name);
            hidden.insert(name);  // nearer layers win; farther copies are shadowed
        }
        ::closedir(d);
        if (dir_is_opaque(dir)) break;
    }
    return {names.begin(), names.end()};
}

}  // namespace strata
