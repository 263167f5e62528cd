#include "tests/support/tree_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace strata::test {

namespace {

void check(bool ok, const std::string& what, const std::filesystem::path& p) {
    if (!ok) throw std::runtime_error(what + " " + p.string() + ": " + std::strerror(errno));
}

void put_le32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// Sets times on `p` and below, children first; returns the next counter.
int64_t stamp_tree(const std::filesystem::path& p, int64_t base, int64_t counter) {
    struct stat st;
    check(::lstat(p.c_str(), &st) == 0, "lstat", p);
    if (S_ISDIR(st.st_mode)) {
        std::vector<std::string> names;
        DIR* d = ::opendir(p.c_str());
        check(d != nullptr, "opendir", p);
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(n);
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const auto& n : names) counter = stamp_tree(p / n, base, counter);
    }
    struct timespec ts[2];
    ts[0] = {static_cast<time_t>(base + counter), 500};
    ts[1] = {static_cast<time_t>(base + counter), static_cast<long>(counter * 1000 + 123)};
    check(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat", p);
    return counter + 1;
}

}  // namespace

TreeBuilder::TreeBuilder(std::filesystem::path root) : root_(std::move(root)) {
    std::filesystem::create_directories(root_);
}

std::filesystem::path TreeBuilder::at(const std::string& rel) const {
    return rel.empty() || rel == "." ? root_ : root_ / rel;
}

TreeBuilder& TreeBuilder::dir(const std::string& rel, mode_t mode) {
    check(::mkdir(at(rel).c_str(), 0700) == 0, "mkdir", at(rel));
    return chmod(rel, mode);
}

TreeBuilder& TreeBuilder::file(const std::string& rel, const std::string& content, mode_t mode) {
    int fd = ::open(at(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    check(fd >= 0, "open", at(rel));
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n <= 0) ::close(fd);
        check(n > 0, "write", at(rel));
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    return chmod(rel, mode);
}

TreeBuilder& TreeBuilder::symlink(const std::string& rel, const std::string& target) {
    check(::symlink(target.c_str(), at(rel).c_str()) == 0, "symlink", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::hardlink(const std::string& rel, const std::string& existing) {
    check(::link(at(existing).c_str(), at(rel).c_str()) == 0, "link", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::fifo(const std::string& rel, mode_t mode) {
    check(::mkfifo(at(rel).c_str(), 0600) == 0, "mkfifo", at(rel));
    return chmod(rel, mode);
}

TreeBuilder& TreeBuilder::socket(const std::string& rel, mode_t mode) {
    check(::mknod(at(rel).c_str(), S_IFSOCK | 0600, 0) == 0, "mknod", at(rel));
    return chmod(rel, mode);
}

TreeBuilder& TreeBuilder::device(const std::string& rel, char type, unsigned major, unsigned minor,
                                 mode_t mode) {
    mode_t kind = type == 'b' ? S_IFBLK : S_IFCHR;
    check(::mknod(at(rel).c_str(), kind | 0600, makedev(major, minor)) == 0, "mknod", at(rel));
    return chmod(rel, mode);
}

TreeBuilder& TreeBuilder::sparse(const std::string& rel, uint64_t size,
                                 const std::vector<std::pair<uint64_t, std::string>>& chunks) {
    int fd = ::open(at(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    check(fd >= 0, "open", at(rel));
    bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
    for (const auto& [offset, data] : chunks) {
        ok = ok && ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)) ==
                       static_cast<ssize_t>(data.size());
    }
    ::close(fd);
    check(ok, "write sparse", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::whiteout(const std::string& rel) {
    check(::mknod(at(rel).c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0, "mknod", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::opaque(const std::string& rel) {
    return xattr(rel, "trusted.overlay.opaque", "y");
}

TreeBuilder& TreeBuilder::xattr(const std::string& rel, const std::string& name,
                                const std::string& value) {
    int rc = ::lsetxattr(at(rel).c_str(), name.c_str(), value.data(), value.size(), 0);
    check(rc == 0, "lsetxattr " + name, at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::capability(const std::string& rel) {
    std::string v;
    put_le32(v, 0x02000000 | 0x1);  // revision 2, effective
    put_le32(v, 1u << 10);          // permitted: CAP_NET_BIND_SERVICE
    put_le32(v, 0);                 // inheritable
    put_le32(v, 0);                 // permitted, high word
    put_le32(v, 0);                 // inheritable, high word
    return xattr(rel, "security.capability", v);
}

TreeBuilder& TreeBuilder::owner(const std::string& rel, uid_t uid, gid_t gid) {
    check(::lchown(at(rel).c_str(), uid, gid) == 0, "lchown", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::chmod(const std::string& rel, mode_t mode) {
    check(::fchmodat(AT_FDCWD, at(rel).c_str(), mode, 0) == 0, "chmod", at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::mtime(const std::string& rel, int64_t sec, long nsec) {
    struct timespec ts[2] = {{static_cast<time_t>(sec), nsec}, {static_cast<time_t>(sec), nsec}};
    check(::utimensat(AT_FDCWD, at(rel).c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat",
          at(rel));
    return *this;
}

TreeBuilder& TreeBuilder::remove(const std::string& rel) {
    std::error_code ec;
    std::filesystem::remove_all(at(rel), ec);
    if (ec) throw std::runtime_error("remove " + at(rel).string() + ": " + ec.message());
    return *this;
}

TreeBuilder& TreeBuilder::stamp(int64_t base) {
    stamp_tree(root_, base, 0);
    return *this;
}

OverlayMount::OverlayMount(const std::vector<std::filesystem::path>& lowers,
                           const std::filesystem::path& mountpoint)
    : mountpoint_(mountpoint) {
    std::vector<std::filesystem::path> all = lowers;
    if (all.size() < 2) {
        std::filesystem::path empty = mountpoint.string() + ".empty-lower";
        std::filesystem::create_directories(empty);
        all.push_back(empty);
    }
    std::string opts = "lowerdir=";
    for (size_t i = 0; i < all.size(); ++i) opts += (i ? ":" : "") + all[i].string();
    std::filesystem::create_directories(mountpoint);
    check(::mount("overlay", mountpoint.c_str(), "overlay", MS_RDONLY, opts.c_str()) == 0,
          "mount overlay (" + opts + ") at", mountpoint);
}

OverlayMount::~OverlayMount() {
    if (::umount2(mountpoint_.c_str(), 0) != 0) ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

}  // namespace strata::test
