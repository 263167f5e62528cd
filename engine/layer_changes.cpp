// layer_changes and layer_content_size: what a layer directory changes
// relative to its lower chain, and how much content it holds.
//
// Rules (the overlay form of overlay_format.h read back):
//   - a whiteout is a Delete of its path;
//   - a path the lower chain also has is a Modify, except a directory that
//     both have with the same mode, owner and xattrs and that is not
//     opaque: such a directory only holds changes and is not reported;
//   - anything else is an Add;
//   - an opaque directory also deletes every lower child this layer does
//     not have itself.
// Paths are reported with a leading "/", sorted bytewise, each once.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "engine/error.h"
#include "engine/file_meta.h"
#include "engine/layer_codec.h"
#include "engine/layer_walk.h"
#include "engine/overlay_format.h"
#include "engine/safe_path.h"

namespace strata {

namespace {

using namespace codec;

bool same_dir_meta(const WalkItem& it, const LowerChain::Hit& hit) {
    const struct stat& a = it.st;
    const struct stat& b = hit.st;
    if ((a.st_mode & 07777) != (b.st_mode & 07777)) return false;
    if (a.st_uid != b.st_uid || a.st_gid != b.st_gid) return false;
    return read_xattrs_at(it.dirfd, it.name, it.rel) ==
           read_xattrs_at(hit.parent.get(), hit.name, "lower " + it.rel);
}

// Lower children of `rel` that the opaque directory `dirfd` does not hold.
void opaque_deletes(const LowerChain& lower, int dirfd, const std::string& rel,
                    std::vector<Change>& out) {
    std::string prefix = rel.empty() ? "/" : "/" + rel + "/";
    for (const std::string& name : lower.view().list(rel)) {
        struct stat st;
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
        if (errno != ENOENT) throw_errno("cannot stat " + prefix + name);
        out.push_back(Change{prefix + name, Change::Kind::Delete});
    }
}

}  // namespace

const char* change_kind_name(Change::Kind kind) {
    switch (kind) {
        case Change::Kind::Add:
            return "add";
        case Change::Kind::Modify:
            return "modify";
        case Change::Kind::Delete:
            return "delete";
    }
    return "unknown";
}

std::vector<Change> layer_changes(const std::filesystem::path& layer_dir,
                                  const std::vector<std::filesystem::path>& lower) {
    LowerChain chain(lower);
    std::vector<Change> out;
    UniqueFd root = open_root_dir(layer_dir);
    walk_dir(root.get(), "", [&](const WalkItem& it) {
        std::string path = "/" + it.rel;
        if (is_whiteout(it.st)) {
            out.push_back(Change{path, Change::Kind::Delete});
            return false;
        }
        std::optional<LowerChain::Hit> hit = chain.lookup(it.rel);
        if (!S_ISDIR(it.st.st_mode)) {
            out.push_back(Change{path, hit ? Change::Kind::Modify : Change::Kind::Add});
            return false;
        }

        UniqueFd dir = open_dir_at(it.dirfd, it.name);
        if (!dir.valid()) throw_errno("cannot open directory " + it.rel);
        bool opaque = is_opaque(dir.get());
        if (!hit) {
            out.push_back(Change{path, Change::Kind::Add});
        } else if (!S_ISDIR(hit->st.st_mode) || opaque || !same_dir_meta(it, *hit)) {
            out.push_back(Change{path, Change::Kind::Modify});
        }
        if (opaque && hit && S_ISDIR(hit->st.st_mode)) {
            opaque_deletes(chain, dir.get(), it.rel, out);
        }
        return true;
    });

    std::sort(out.begin(), out.end(),
              [](const Change& a, const Change& b) { return a.path < b.path; });
    out.erase(std::unique(out.begin(), out.end(),
                          [](const Change& a, const Change& b) { return a.path == b.path; }),
              out.end());
    return out;
}

uint64_t layer_content_size(const std::filesystem::path& layer_dir) {
    uint64_t total = 0;
    std::set<std::pair<dev_t, ino_t>> seen;
    walk_layer(layer_dir, [&](const WalkItem& it) {
        if (!S_ISREG(it.st.st_mode)) return S_ISDIR(it.st.st_mode);
        if (it.st.st_nlink > 1 && !seen.emplace(it.st.st_dev, it.st.st_ino).second) return false;
        total += static_cast<uint64_t>(it.st.st_size);
        return false;
    });
    return total;
}

}  // namespace strata
