// Sorted, non-following layer walk (see layer_walk.h).
#include "engine/layer_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "engine/error.h"
#include "engine/safe_path.h"

namespace strata::codec {

namespace {


}  // namespace

void walk_dir(int dirfd, const std::string& rel,
              const std::function<bool(const WalkItem&)>& visit) {
    std::string display = rel.empty() ? "the layer root" : rel;
    for (const std::string& name : sorted_names(dirfd, display)) {
        std::string child = rel.empty() ? name : rel + "/" + name;
        struct stat st;
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue;
            throw_errno("cannot stat " + child);
        }
        bool descend = visit(WalkItem{child, dirfd, name, st});
        if (!descend || !S_ISDIR(st.st_mode)) continue;
        UniqueFd sub = open_dir_at(dirfd, name);
        if (!sub.valid()) throw_errno("cannot open directory " + child);
        walk_dir(sub.get(), child, visit);
    }
}

void walk_layer(const std::filesystem::path& root,
                const std::function<bool(const WalkItem&)>& visit) {
    UniqueFd fd = open_root_dir(root);
    walk_dir(fd.get(), "", visit);
}

}  // namespace strata::codec
