#include "engine/fsck_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "engine/overlay_format.h"

namespace fs = std::filesystem;

namespace strata {

namespace {

using Expected = std::map<std::string, FileRecord>;

// The path the index gives an opaque marker at the layer root; the applier
// turns it into a whiteout per lower root entry, which the index does not list.
constexpr const char kRootOpaque[] = ".wh..wh..opq";

std::string parent_of(const std::string& p) {
    auto slash = p.rfind('/');
    return slash == std::string::npos ? "" : p.substr(0, slash);
}

std::string base_of(const std::string& p) {
    auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

void erase_below(Expected& e, const std::string& path) {
    const std::string prefix = path + "/";
    for (auto it = e.lower_bound(prefix); it != e.end() && it->first.rfind(prefix, 0) == 0;) {
        it = e.erase(it);
    }
}

// Replays the records into the tree they leave.
Expected replay(Catalog& catalog, const std::string& layer) {
    Expected e;
    catalog.for_each_file(layer, [&e](const FileRecord& r) {
        if (r.path == "." || r.type == 'o') return;
        if (r.type == 'w') {
            std::string dir = parent_of(r.path);
            std::string name = base_of(r.path).substr(sizeof(kWhiteoutPrefix) - 1);
            std::string target = dir.empty() ? name : dir + "/" + name;
            if (e.count(target)) return;  // this layer's own entry stays
            FileRecord w = r;
            w.path = target;
            e[target] = w;
            erase_below(e, target);
            return;
        }
        if (r.type != 'd') erase_below(e, r.path);
        e[r.path] = r;
    });
    return e;
}

bool type_matches(char type, const struct stat& st) {
    switch (type) {
        case 'f':
        case 'h': return S_ISREG(st.st_mode);
        case 'd': return S_ISDIR(st.st_mode);
        case 'l': return S_ISLNK(st.st_mode);
        case 'c': return S_ISCHR(st.st_mode) && !is_whiteout(st);
        case 'b': return S_ISBLK(st.st_mode);
        case 'p': return S_ISFIFO(st.st_mode);
        default: return false;
    }
}

// Reads a file to its end; false on an I/O error.
bool readable(const fs::path& p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[64 * 1024];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    }
    ::close(fd);
    return n == 0;
}

void check_one(const fs::path& dir, const FileRecord& r, bool full,
               std::vector<IndexProblem>& out) {
    fs::path p = dir / r.path;
    struct stat st;
    bool present = ::lstat(p.c_str(), &st) == 0;
    // A character device 0:0 is the overlay form's whiteout, and is applied
    // as one (docs/security.md).
    bool whiteout = r.type == 'w' || (r.type == 'c' && r.dev_major == 0 && r.dev_minor == 0);
    if (whiteout) {
        // A whiteout of something the chain never had may be a no-op.
        if (present && !is_whiteout(st)) out.push_back({r.path, "expected a whiteout"});
        return;
    }
    if (!present) {
        out.push_back({r.path, "indexed but missing from the layer"});
        return;
    }
    if (!type_matches(r.type, st)) {
        out.push_back({r.path, std::string("type differs from the index ('") + r.type + "')"});
        return;
    }
    if (r.type == 'f' && static_cast<uint64_t>(st.st_size) != r.size) {
        out.push_back({r.path, "size " + std::to_string(st.st_size) + " differs from the index (" +
                                   std::to_string(r.size) + ")"});
    }
    if (!full) return;
    if (r.type != 'l' && r.type != 'h' && (st.st_mode & 07777) != (r.mode & 07777)) {
        out.push_back({r.path, "mode differs from the index"});
    }
    if (r.type != 'h' && (st.st_uid != r.uid || st.st_gid != r.gid)) {
        out.push_back({r.path, "owner differs from the index"});
    }
    if (r.type == 'l') {
        std::error_code ec;
        if (fs::read_symlink(p, ec).string() != r.link_target) {
            out.push_back({r.path, "symlink target differs from the index"});
        }
    }
    if (S_ISREG(st.st_mode) && !readable(p)) out.push_back({r.path, "cannot be read"});
}

// Entries in the directory the replayed index does not explain.
void check_unexplained(const fs::path& dir, const Expected& e, bool root_opaque,
                       std::vector<IndexProblem>& out) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
        std::string rel = it->path().lexically_relative(dir).string();
        if (e.count(rel)) continue;
        // Directories the applier created as parents are implied.
        if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
        struct stat st;
        if (::lstat(it->path().c_str(), &st) != 0) continue;
        // A lower file a hard link named is copied up beside its link.
        if (S_ISREG(st.st_mode) && st.st_nlink > 1) continue;
        if (root_opaque && is_whiteout(st) && rel.find('/') == std::string::npos) continue;
        out.push_back({rel, "in the layer but not in the index"});
    }
}

}  // namespace

std::vector<IndexProblem> check_file_index(Catalog& catalog, const std::string& layer,
                                           const fs::path& dir, bool full) {
    std::vector<IndexProblem> out;
    Expected e = replay(catalog, layer);
    for (const auto& [path, r] : e) check_one(dir, r, full, out);
    bool root_opaque = false;
    catalog.for_each_file(layer, [&root_opaque](const FileRecord& r) {
        root_opaque = root_opaque || (r.type == 'o' && r.path == kRootOpaque);
    });
    if (full) check_unexplained(dir, e, root_opaque, out);
    return out;
}

}  // namespace strata
