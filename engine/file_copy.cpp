#include "engine/file_copy.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "engine/overlay_format.h"

namespace strata {

namespace {

constexpr size_t kBufferSize = 128 * 1024;

// A path that names `name` inside the open directory `dirfd` without
// resolving anything above it again, for the l*xattr calls (which have no
// *at form).
std::string fd_path(int dirfd, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

ScopedFd open_source(const std::filesystem::path& src) {
    int fd = ::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot open " + src.string());
    return ScopedFd(fd);
}

void write_all(int fd, const char* data, size_t n, off_t at, const std::string& display) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, data, n, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw_errno("cannot write " + display);
        data += w;
        n -= static_cast<size_t>(w);
        at += w;
    }
}

// Copies bytes [from, to) of `in` to the same offsets of `out`.
void copy_range(int in, int out, off_t from, off_t to, const std::string& display) {
    std::vector<char> buf(kBufferSize);
    while (from < to) {
        size_t want = static_cast<size_t>(std::min<off_t>(to - from, kBufferSize));
        ssize_t r = ::pread(in, buf.data(), want, from);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw_errno("cannot read the source of " + display);
        if (r == 0) break;  // the source shrank while being copied
        write_all(out, buf.data(), static_cast<size_t>(r), from, display);
        from += r;
    }
}

// Copies `size` bytes of content, leaving the source's holes as holes.
void copy_data(int in, int out, off_t size, const std::string& display) {
    off_t pos = 0;
    while (pos < size) {
        off_t data = ::lseek(in, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;  // only a hole is left
        if (data < 0) {                         // no hole support: copy it all
            copy_range(in, out, pos, size, display);
            break;
        }
        off_t hole = ::lseek(in, data, SEEK_HOLE);
        if (hole < 0 || hole > size) hole = size;
        copy_range(in, out, data, hole, display);
        pos = hole;
    }
    if (::ftruncate(out, size) != 0) throw_errno("cannot set the size of " + display);
}

void set_xattrs_fd(int fd, const std::filesystem::path& src, const std::string& display) {
    for (const auto& [name, value] : read_xattrs(src)) {
        if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0) {
            throw_errno("cannot set xattr " + name + " on " + display);
        }
    }
}

void set_xattrs_at(int dirfd, const std::string& name, const std::filesystem::path& src,
                   const std::string& display) {
    std::string target = fd_path(dirfd, name);
    for (const auto& [key, value] : read_xattrs(src)) {
        if (::lsetxattr(target.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
            throw_errno("cannot set xattr " + key + " on " + display);
        }
    }
}

void copy_regular(const std::filesystem::path& src, const struct stat& st, int dirfd,
                  const std::string& name, const std::string& display, const CopyOptions& opts) {
    ScopedFd in = open_source(src);
    struct stat now;
    if (::fstat(in.get(), &now) != 0) throw_errno("cannot stat " + src.string());
    if (!S_ISREG(now.st_mode)) throw Error("cannot copy " + display + ": source changed type");

    int fd =
        ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno("cannot create " + display);
    ScopedFd out(fd);
    copy_data(in.get(), out.get(), now.st_size, display);

    if (::fchown(out.get(), st.st_uid, st.st_gid) != 0) throw_errno("cannot chown " + display);
    if (::fchmod(out.get(), st.st_mode & 07777) != 0) throw_errno("cannot chmod " + display);
    set_xattrs_fd(out.get(), src, display);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(out.get(), times) != 0) throw_errno("cannot set the times of " + display);
    if (opts.sync && ::fsync(out.get()) != 0) throw_errno("cannot fsync " + display);
}

std::string read_link(const std::filesystem::path& src, const struct stat& st) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    while (true) {
        ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
        if (n < 0) throw_errno("cannot read symlink " + src.string());
        if (static_cast<size_t>(n) < target.size()) {
            target.resize(static_cast<size_t>(n));
            return target;
        }
        target.resize(target.size() * 2);  // the link grew since lstat
    }
}

// Creates the symlink, device, fifo or socket itself; its metadata follows.
void create_special(const std::filesystem::path& src, const struct stat& st, int dirfd,
                    const std::string& name, const std::string& display) {
    if (S_ISLNK(st.st_mode)) {
        std::string target = read_link(src, st);
        if (::symlinkat(target.c_str(), dirfd, name.c_str()) != 0) {
            throw_errno("cannot create symlink " + display);
        }
        return;
    }
    if (::mknodat(dirfd, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
        throw_errno("cannot create special file " + display);
    }
}

void copy_special(const std::filesystem::path& src, const struct stat& st, int dirfd,
                  const std::string& name, const std::string& display) {
    create_special(src, st, dirfd, name, display);

    if (::fchownat(dirfd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("cannot chown " + display);
    }
    // The entry was just created as a non-symlink, so chmod cannot follow anything.
    if (!S_ISLNK(st.st_mode) && ::fchmodat(dirfd, name.c_str(), st.st_mode & 07777, 0) != 0) {
        throw_errno("cannot chmod " + display);
    }
    set_xattrs_at(dirfd, name, src, display);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(dirfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("cannot set the times of " + display);
    }
}

}  // namespace

ScopedFd::~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

std::map<std::string, std::string> read_xattrs(const std::filesystem::path& path) {
    std::map<std::string, std::string> out;
    std::vector<char> names;
    while (true) {
        ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
        if (n < 0 && (errno == ENOTSUP || errno == ENODATA)) return out;
        if (n < 0) throw_errno("cannot list xattrs of " + path.string());
        names.resize(static_cast<size_t>(n));
        n = ::llistxattr(path.c_str(), names.data(), names.size());
        if (n < 0 && errno == ERANGE) continue;  // the list grew in between
        if (n < 0) throw_errno("cannot list xattrs of " + path.string());
        names.resize(static_cast<size_t>(n));
        break;
    }
    for (size_t i = 0; i < names.size(); i += std::strlen(names.data() + i) + 1) {
        std::string name(names.data() + i);
        if (name.empty() || is_overlay_xattr(name)) continue;
        std::string value;
        while (true) {
            ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
            if (n < 0 && errno == ENODATA) break;  // removed in between
            if (n < 0) throw_errno("cannot read xattr " + name + " of " + path.string());
            value.resize(static_cast<size_t>(n));
            n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
            if (n < 0 && errno == ERANGE) continue;
            if (n < 0) throw_errno("cannot read xattr " + name + " of " + path.string());
            value.resize(static_cast<size_t>(n));
            out.emplace(name, std::move(value));
            break;
        }
    }
    return out;
}

bool same_content(const std::filesystem::path& a, const std::filesystem::path& b) {
    ScopedFd fa = open_source(a);
    ScopedFd fb = open_source(b);
    std::vector<char> ba(kBufferSize);
    std::vector<char> bb(kBufferSize);
    while (true) {
        ssize_t na = ::read(fa.get(), ba.data(), ba.size());
        if (na < 0) throw_errno("cannot read " + a.string());
        size_t got = 0;
        while (got < static_cast<size_t>(na)) {
            ssize_t nb = ::read(fb.get(), bb.data() + got, static_cast<size_t>(na) - got);
            if (nb < 0) throw_errno("cannot read " + b.string());
            if (nb == 0) return false;
            got += static_cast<size_t>(nb);
        }
        if (std::memcmp(ba.data(), bb.data(), got) != 0) return false;
        if (na == 0) {
            char extra;
            ssize_t nb = ::read(fb.get(), &extra, 1);
            if (nb < 0) throw_errno("cannot read " + b.string());
            return nb == 0;
        }
    }
}

ScopedFd open_dir(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot open directory " + path.string());
    return ScopedFd(fd);
}

ScopedFd make_dir(int dirfd, const std::string& name, const std::string& display) {
    if (::mkdirat(dirfd, name.c_str(), 0700) != 0) throw_errno("cannot create " + display);
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot open " + display);
    return ScopedFd(fd);
}

void apply_dir_metadata(int fd, const std::filesystem::path& src, const struct stat& st,
                        const std::string& display, const CopyOptions& opts) {
    if (::fchown(fd, st.st_uid, st.st_gid) != 0) throw_errno("cannot chown " + display);
    if (::fchmod(fd, st.st_mode & 07777) != 0) throw_errno("cannot chmod " + display);
    set_xattrs_fd(fd, src, display);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(fd, times) != 0) throw_errno("cannot set the times of " + display);
    if (opts.sync && ::fsync(fd) != 0) throw_errno("cannot fsync " + display);
}

void copy_node(const std::filesystem::path& src, const struct stat& st, int dirfd,
               const std::string& name, const std::string& display, const CopyOptions& opts) {
    if (S_ISDIR(st.st_mode)) throw Error("cannot copy " + display + ": it is a directory");
    if (S_ISREG(st.st_mode)) {
        copy_regular(src, st, dirfd, name, display, opts);
    } else {
        copy_special(src, st, dirfd, name, display);
    }
}

void LinkingCopier::place(const std::filesystem::path& src, const struct stat& st, int dirfd,
                          const std::string& name, const std::string& rel) {
    if (st.st_nlink <= 1) {
        copy_node(src, st, dirfd, name, rel, opts_);
        return;
    }
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = first_copy_.find(key);
    if (it == first_copy_.end()) {
        copy_node(src, st, dirfd, name, rel, opts_);
        first_copy_.emplace(key, rel);
        return;
    }
    if (::linkat(root_fd_, it->second.c_str(), dirfd, name.c_str(), 0) != 0) {
        throw_errno("cannot hard-link " + rel + " to " + it->second);
    }
}

}  // namespace strata
