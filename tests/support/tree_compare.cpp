#include "tests/support/tree_compare.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "engine/digest.h"
#include "engine/error.h"

namespace strata::test {

namespace {

// The xattrs are read here independently of the engine's copy code, so the
// comparison does not share a mistake with the code it checks.
std::map<std::string, std::string> xattrs_of(const std::filesystem::path& p) {
    std::map<std::string, std::string> out;
    ssize_t n = ::llistxattr(p.c_str(), nullptr, 0);
    if (n < 0 && errno == ENOTSUP) return out;
    if (n < 0) throw_errno("tree_compare: llistxattr " + p.string());
    std::string names(static_cast<size_t>(n), '\0');
    n = ::llistxattr(p.c_str(), names.data(), names.size());
    if (n < 0) throw_errno("tree_compare: llistxattr " + p.string());
    names.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < names.size(); i += std::strlen(names.c_str() + i) + 1) {
        std::string name(names.c_str() + i);
        if (name.empty() || name.rfind("trusted.overlay.", 0) == 0) continue;
        ssize_t len = ::lgetxattr(p.c_str(), name.c_str(), nullptr, 0);
        if (len < 0) throw_errno("tree_compare: lgetxattr " + name + " of " + p.string());
        std::string value(static_cast<size_t>(len), '\0');
        len = ::lgetxattr(p.c_str(), name.c_str(), value.data(), value.size());
        if (len < 0) throw_errno("tree_compare: lgetxattr " + name + " of " + p.string());
        value.resize(static_cast<size_t>(len));
        out.emplace(std::move(name), std::move(value));
    }
    return out;
}

std::string content_digest(const std::filesystem::path& p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("tree_compare: open " + p.string());
    Sha256 sha;
    char buf[65536];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw_errno("tree_compare: read " + p.string(), err);
        }
        if (n == 0) break;
        sha.update(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return digest_hex(sha.final_digest());
}

char type_of(mode_t mode) {
    switch (mode & S_IFMT) {
        case S_IFREG:
            return 'f';
        case S_IFDIR:
            return 'd';
        case S_IFLNK:
            return 'l';
        case S_IFCHR:
            return 'c';
        case S_IFBLK:
            return 'b';
        case S_IFIFO:
            return 'p';
        case S_IFSOCK:
            return 's';
        default:
            return '?';
    }
}

struct Scan {
    std::filesystem::path root;
    ManifestOptions opts;
    Manifest out;
    std::map<std::string, std::pair<dev_t, ino_t>> inode_of;    // non-directories only
    std::map<std::pair<dev_t, ino_t>, std::string> first_path;  // smallest path per inode
};

void add_entry(Scan& s, const std::string& rel, const struct stat& st) {
    std::filesystem::path p = rel == "." ? s.root : s.root / rel;
    ManifestEntry e;
    e.path = rel;
    e.type = type_of(st.st_mode);
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    if (e.type == 'f') {
        e.size = static_cast<uint64_t>(st.st_size);
        e.sha256 = content_digest(p);
    } else if (e.type == 'l') {
        e.size = static_cast<uint64_t>(st.st_size);
        std::error_code ec;
        e.link_target = std::filesystem::read_symlink(p, ec).string();
        if (ec) throw Error("tree_compare: readlink " + p.string() + ": " + ec.message());
    } else if (e.type == 'c' || e.type == 'b') {
        e.rdev_major = major(st.st_rdev);
        e.rdev_minor = minor(st.st_rdev);
    }
    e.xattrs = xattrs_of(p);
    if (s.opts.mtime) {
        e.has_mtime = true;
        e.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    }
    if (e.type != 'd') {
        auto inode = std::make_pair(st.st_dev, st.st_ino);
        s.inode_of[rel] = inode;
        auto [it, fresh] = s.first_path.emplace(inode, rel);
        if (!fresh && rel < it->second) it->second = rel;
    }
    s.out.push_back(std::move(e));
}

void walk(Scan& s, const std::string& rel) {
    std::filesystem::path dir = rel.empty() ? s.root : s.root / rel;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw_errno("tree_compare: opendir " + dir.string());
    std::vector<std::string> names;
    while (dirent* ent = ::readdir(d)) {
        std::string name = ent->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
        std::string child = rel.empty() ? name : rel + "/" + name;
        struct stat st;
        if (::lstat((s.root / child).c_str(), &st) != 0) {
            throw_errno("tree_compare: lstat " + (s.root / child).string());
        }
        add_entry(s, child, st);
        if (S_ISDIR(st.st_mode)) walk(s, child);
    }
}

std::string octal(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", v);
    return buf;
}

std::string printable(const std::string& v) {
    std::string out;
    for (unsigned char c : v) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

std::string xattrs_text(const std::map<std::string, std::string>& x) {
    std::string out = "{";
    for (const auto& [k, v] : x) {
        if (out.size() > 1) out += ", ";
        out += k + "=" + printable(v);
    }
    return out + "}";
}

void compare_entry(const ManifestEntry& a, const ManifestEntry& b, std::vector<std::string>& out) {
    auto diff = [&](const std::string& what, const std::string& x, const std::string& y) {
        if (x != y) out.push_back(a.path + ": " + what + " " + x + " != " + y);
    };
    diff("type", std::string(1, a.type), std::string(1, b.type));
    diff("mode", octal(a.mode), octal(b.mode));
    diff("owner", std::to_string(a.uid) + ":" + std::to_string(a.gid),
         std::to_string(b.uid) + ":" + std::to_string(b.gid));
    diff("size", std::to_string(a.size), std::to_string(b.size));
    diff("sha256", a.sha256, b.sha256);
    diff("link target", a.link_target, b.link_target);
    diff("rdev", std::to_string(a.rdev_major) + ":" + std::to_string(a.rdev_minor),
         std::to_string(b.rdev_major) + ":" + std::to_string(b.rdev_minor));
    diff("xattrs", xattrs_text(a.xattrs), xattrs_text(b.xattrs));
    diff("hard-link group", a.link_group, b.link_group);
    if (a.has_mtime && b.has_mtime) {
        diff("mtime_ns", std::to_string(a.mtime_ns), std::to_string(b.mtime_ns));
    }
}

}  // namespace

Manifest scan_tree(const std::filesystem::path& root, const ManifestOptions& opts) {
    Scan s{root, opts, {}, {}, {}};
    struct stat st;
    if (::lstat(root.c_str(), &st) != 0) throw_errno("tree_compare: lstat " + root.string());
    if (!S_ISDIR(st.st_mode)) throw Error("tree_compare: " + root.string() + " is no directory");
    if (opts.include_root) add_entry(s, ".", st);
    walk(s, "");

    std::sort(s.out.begin(), s.out.end(),
              [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
    for (ManifestEntry& e : s.out) {
        auto it = s.inode_of.find(e.path);
        if (it != s.inode_of.end()) e.link_group = s.first_path[it->second];
    }
    return s.out;
}

std::string describe(const ManifestEntry& e) {
    std::string out = e.path + " " + e.type + " " + octal(e.mode) + " " + std::to_string(e.uid) +
                      ":" + std::to_string(e.gid);
    if (e.type == 'f') out += " size=" + std::to_string(e.size) + " sha256=" + e.sha256;
    if (e.type == 'l') out += " -> " + e.link_target;
    if (e.type == 'c' || e.type == 'b') {
        out += " rdev=" + std::to_string(e.rdev_major) + ":" + std::to_string(e.rdev_minor);
    }
    if (!e.xattrs.empty()) out += " xattrs=" + xattrs_text(e.xattrs);
    if (!e.link_group.empty() && e.link_group != e.path) out += " linked-to=" + e.link_group;
    if (e.has_mtime) out += " mtime_ns=" + std::to_string(e.mtime_ns);
    return out;
}

std::vector<std::string> compare_manifests(const Manifest& expected, const Manifest& actual) {
    std::vector<std::string> out;
    size_t i = 0;
    size_t j = 0;
    while (i < expected.size() || j < actual.size()) {
        if (j == actual.size() || (i < expected.size() && expected[i].path < actual[j].path)) {
            out.push_back("only in expected: " + describe(expected[i++]));
        } else if (i == expected.size() || actual[j].path < expected[i].path) {
            out.push_back("only in actual: " + describe(actual[j++]));
        } else {
            compare_entry(expected[i++], actual[j++], out);
        }
    }
    return out;
}

std::string format_differences(const std::vector<std::string>& diffs, size_t limit) {
    std::string out;
    for (size_t i = 0; i < diffs.size() && i < limit; ++i) out += diffs[i] + "\n";
    if (diffs.size() > limit) out += "... and " + std::to_string(diffs.size() - limit) + " more\n";
    return out;
}

const ManifestEntry* find_entry(const Manifest& m, const std::string& path) {
    auto before = [](const ManifestEntry& e, const std::string& p) { return e.path < p; };
    auto it = std::lower_bound(m.begin(), m.end(), path, before);
    return it != m.end() && it->path == path ? &*it : nullptr;
}

}  // namespace strata::test
