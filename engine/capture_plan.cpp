#include "engine/capture_plan.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "engine/error.h"
#include "engine/file_copy.h"
#include "engine/overlay_format.h"

namespace strata {

namespace {

using Inode = std::pair<dev_t, ino_t>;
using LinkGroups = std::map<Inode, std::vector<std::string>>;  // inode -> sorted paths

std::string join(const std::string& rel, const std::string& name) {
    return rel.empty() ? name : rel + "/" + name;
}

std::vector<std::string> list_dir(const std::filesystem::path& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw_errno("cannot open directory " + dir.string());
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

void sort_groups(LinkGroups& groups) {
    for (auto& [inode, paths] : groups) std::sort(paths.begin(), paths.end());
}

std::string read_link(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::path target = std::filesystem::read_symlink(p, ec);
    if (ec) throw Error("cannot read symlink " + p.string() + ": " + ec.message());
    return target.string();
}

bool same_time(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

class Planner {
public:
    Planner(std::filesystem::path mounted, const MergedView& lower)
        : mounted_(std::move(mounted)), lower_(lower) {}
    Planner(const Planner&) = delete;
    Planner& operator=(const Planner&) = delete;

    std::vector<UpperEntry> run() {
        index_mounted("");
        sort_groups(mounted_links_);
        return diff_dir("", true);
    }

private:
    std::filesystem::path at(const std::string& rel) const {
        return rel.empty() ? mounted_ : mounted_ / rel;
    }

    void index_mounted(const std::string& rel);
    void index_lower(const std::string& rel, LinkGroups& out) const;
    const LinkGroups& lower_links();

    std::vector<UpperEntry> diff_dir(const std::string& rel, bool merges);
    void diff_child(const std::string& child, bool merges, std::vector<UpperEntry>& out);
    bool attrs_differ(const std::string& rel, const struct stat& ms,
                      const MergedView::Hit& hit) const;
    bool node_differs(const std::string& rel, const struct stat& ms, const MergedView::Hit& hit);
    bool links_differ(const std::string& rel, const struct stat& ms, const MergedView::Hit& hit);
    bool has_node(const std::string& rel) const;

    std::filesystem::path mounted_;
    const MergedView& lower_;
    LinkGroups mounted_links_;
    std::optional<LinkGroups> lower_links_;  // built on first need
};

// Records the hard-link groups of `mounted` below `rel`.
void Planner::index_mounted(const std::string& rel) {
    for (const std::string& name : list_dir(at(rel))) {
        std::string child = join(rel, name);
        struct stat st;
        if (::lstat(at(child).c_str(), &st) != 0) throw_errno("cannot stat " + at(child).string());
        if (S_ISDIR(st.st_mode)) {
            index_mounted(child);
        } else if (st.st_nlink > 1) {
            mounted_links_[{st.st_dev, st.st_ino}].push_back(child);
        }
    }
}

// Records the hard-link groups of the merged lower tree below `rel`.
void Planner::index_lower(const std::string& rel, LinkGroups& out) const {
    for (const std::string& name : lower_.list(rel)) {
        std::string child = join(rel, name);
        std::optional<MergedView::Hit> hit = lower_.lookup(child);
        if (!hit) continue;
        if (S_ISDIR(hit->st.st_mode)) {
            index_lower(child, out);
        } else if (hit->st.st_nlink > 1) {
            out[{hit->st.st_dev, hit->st.st_ino}].push_back(child);
        }
    }
}

const LinkGroups& Planner::lower_links() {
    if (!lower_links_) {
        LinkGroups groups;
        index_lower("", groups);
        sort_groups(groups);
        lower_links_ = std::move(groups);
    }
    return *lower_links_;
}

// `merges`: whether the lower chain shows through at `rel` (false below a
// directory that is new or opaque in the new layer).
std::vector<UpperEntry> Planner::diff_dir(const std::string& rel, bool merges) {
    std::vector<UpperEntry> out;
    std::vector<std::string> names = list_dir(at(rel));
    for (const std::string& name : names) diff_child(join(rel, name), merges, out);
    if (!merges) return out;

    for (const std::string& name : lower_.list(rel)) {
        if (!std::binary_search(names.begin(), names.end(), name)) {
            out.push_back({join(rel, name), UpperEntry::Kind::kWhiteout});
        }
    }
    return out;
}

void Planner::diff_child(const std::string& child, bool merges, std::vector<UpperEntry>& out) {
    struct stat ms;
    if (::lstat(at(child).c_str(), &ms) != 0) throw_errno("cannot stat " + at(child).string());
    std::optional<MergedView::Hit> hit;
    if (merges) hit = lower_.lookup(child);

    if (!S_ISDIR(ms.st_mode)) {
        if (is_whiteout(ms)) {
            throw Error("cannot capture " + at(child).string() +
                        ": a character device 0:0 would read as a whiteout");
        }
        if (!hit || node_differs(child, ms, *hit)) {
            out.push_back({child, UpperEntry::Kind::kCopy});
        }
        return;
    }

    if (!hit || !S_ISDIR(hit->st.st_mode)) {
        // Nothing of the lower chain shows through here; a lower non-directory
        // is hidden by any directory, the opaque mark makes that explicit.
        out.push_back({child, hit ? UpperEntry::Kind::kOpaqueDir : UpperEntry::Kind::kDir});
        std::vector<UpperEntry> below = diff_dir(child, false);
        out.insert(out.end(), below.begin(), below.end());
        return;
    }
    std::vector<UpperEntry> below = diff_dir(child, true);
    if (!below.empty() || attrs_differ(child, ms, *hit)) {
        out.push_back({child, UpperEntry::Kind::kDir});
        out.insert(out.end(), below.begin(), below.end());
    }
}

// Metadata every type has: permission bits, owner, mtime, xattrs.
bool Planner::attrs_differ(const std::string& rel, const struct stat& ms,
                           const MergedView::Hit& hit) const {
    const struct stat& ls = hit.st;
    if ((ms.st_mode & 07777) != (ls.st_mode & 07777)) return true;
    if (ms.st_uid != ls.st_uid || ms.st_gid != ls.st_gid) return true;
    if (!same_time(ms.st_mtim, ls.st_mtim)) return true;
    return read_xattrs(at(rel)) != read_xattrs(hit.real_path);
}

bool Planner::node_differs(const std::string& rel, const struct stat& ms,
                           const MergedView::Hit& hit) {
    const struct stat& ls = hit.st;
    if ((ms.st_mode & S_IFMT) != (ls.st_mode & S_IFMT)) return true;
    if (S_ISREG(ms.st_mode) && ms.st_size != ls.st_size) return true;
    if ((S_ISCHR(ms.st_mode) || S_ISBLK(ms.st_mode)) && ms.st_rdev != ls.st_rdev) return true;
    if (attrs_differ(rel, ms, hit)) return true;
    if (S_ISLNK(ms.st_mode) && read_link(at(rel)) != read_link(hit.real_path)) return true;
    if (links_differ(rel, ms, hit)) return true;
    return S_ISREG(ms.st_mode) && !same_content(at(rel), hit.real_path);
}

// Whether `mounted` holds a non-directory at `rel`, looked up one component
// at a time so that no symlink of `mounted` is followed.
bool Planner::has_node(const std::string& rel) const {
    size_t pos = 0;
    struct stat st;
    while ((pos = rel.find('/', pos)) != std::string::npos) {
        if (::lstat(at(rel.substr(0, pos)).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return false;
        }
        ++pos;
    }
    return ::lstat(at(rel).c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

// Whether keeping `rel` from the lower chain would give it another hard-link
// group than it has in `mounted`. A kept path stays linked with the lower
// group's other paths that are kept too; those `mounted` no longer has are
// whited out and do not count. So `rel` may be kept only if the lower group
// members `mounted` still has are exactly its group in `mounted`. Every
// member of a group gets the same answer, so a group is kept or copied whole.
bool Planner::links_differ(const std::string& rel, const struct stat& ms,
                           const MergedView::Hit& hit) {
    if (ms.st_nlink <= 1 && hit.st.st_nlink <= 1) return false;
    const std::vector<std::string> alone{rel};

    auto m = mounted_links_.find({ms.st_dev, ms.st_ino});
    const std::vector<std::string>& in_mounted = m == mounted_links_.end() ? alone : m->second;
    const LinkGroups& lower = lower_links();
    auto l = lower.find({hit.st.st_dev, hit.st.st_ino});
    if (l == lower.end()) return in_mounted != alone;

    std::vector<std::string> still_there;
    for (const std::string& q : l->second) {
        if (q == rel || has_node(q)) still_there.push_back(q);
    }
    return in_mounted != still_there;
}

}  // namespace

std::vector<UpperEntry> plan_capture(const std::filesystem::path& mounted,
                                     const MergedView& lower) {
    Planner planner(mounted, lower);
    return planner.run();
}

}  // namespace strata
