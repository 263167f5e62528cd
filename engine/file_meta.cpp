// File metadata helpers (see file_meta.h).
//
// Invariants: nothing here follows a symlink at the final component; by-name
// calls use *at forms with AT_SYMLINK_NOFOLLOW or the l* xattr calls on a
// /proc/self/fd path. Reading xattrs never reports overlay-form or host
// names, so nothing built on it copies, compares or removes them.
#include "engine/file_meta.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/overlay_format.h"

namespace strata::codec {

namespace {

std::string proc_path(int dirfd, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

// Reads a variable-sized answer from `call(buf, size)` (listxattr/getxattr
// style: size 0 asks for the size, ERANGE means it grew meanwhile). Returns
// 0 and fills `out`, or the errno of the failure.
int read_sized(const std::function<ssize_t(char*, size_t)>& call, std::string& out) {
    for (int attempt = 0; attempt < 8; ++attempt) {
        ssize_t want = call(nullptr, 0);
        if (want < 0) return errno;
        out.assign(static_cast<size_t>(want), '\0');
        if (want == 0) return 0;
        ssize_t got = call(out.data(), out.size());
        if (got >= 0) {
            out.resize(static_cast<size_t>(got));
            return 0;
        }
        if (errno != ERANGE) return errno;
    }
    return ERANGE;
}

using Lister = std::function<ssize_t(char*, size_t)>;
using Getter = std::function<ssize_t(const char*, char*, size_t)>;

Xattrs read_xattrs(const Lister& list, const Getter& get, const std::string& display) {
    std::string names;
    int err = read_sized(list, names);
    if (err == ENOTSUP) return {};
    if (err != 0) throw_errno("cannot list xattrs of " + display, err);
    Xattrs out;
    for (size_t pos = 0; pos < names.size();) {
        std::string key = names.c_str() + pos;
        pos += key.size() + 1;
        if (key.empty() || is_overlay_xattr(key) || is_host_xattr(key)) continue;
        std::string value;
        err = read_sized([&](char* buf, size_t n) { return get(key.c_str(), buf, n); }, value);
        if (err == ENODATA) continue;  // removed meanwhile
        if (err != 0) throw_errno("cannot read xattr " + key + " of " + display, err);
        out.emplace_back(std::move(key), std::move(value));
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

bool is_host_xattr(const std::string& name) {
    return name.rfind("security.", 0) == 0 && name != "security.capability";
}

Xattrs read_xattrs_fd(int fd, const std::string& display) {
    return read_xattrs([fd](char* b, size_t n) { return ::flistxattr(fd, b, n); },
                       [fd](const char* k, char* b, size_t n) { return ::fgetxattr(fd, k, b, n); },
                       display);
}

Xattrs read_xattrs_at(int dirfd, const std::string& name, const std::string& display) {
    std::string p = proc_path(dirfd, name);
    return read_xattrs(
        [&p](char* b, size_t n) { return ::llistxattr(p.c_str(), b, n); },
        [&p](const char* k, char* b, size_t n) { return ::lgetxattr(p.c_str(), k, b, n); },
        display);
}

bool has_xattr_at(int dirfd, const std::string& name, const std::string& key,
                  const std::string& display) {
    std::string p = proc_path(dirfd, name);
    if (::lgetxattr(p.c_str(), key.c_str(), nullptr, 0) >= 0) return true;
    if (errno == ENODATA || errno == ENOTSUP) return false;
    throw_errno("cannot read xattr " + key + " of " + display);
}

void write_xattr_fd(int fd, const std::string& key, const std::string& value,
                    const std::string& display) {
    if (::fsetxattr(fd, key.c_str(), value.data(), value.size(), 0) != 0) {
        throw_errno("cannot set xattr " + key + " on " + display);
    }
}

void write_xattr_at(int dirfd, const std::string& name, const std::string& key,
                    const std::string& value, const std::string& display) {
    std::string p = proc_path(dirfd, name);
    if (::lsetxattr(p.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
        throw_errno("cannot set xattr " + key + " on " + display);
    }
}

void replace_xattrs_fd(int fd, const Xattrs& want, const std::string& display) {
    for (const auto& [key, value] : read_xattrs_fd(fd, display)) {
        bool kept = std::any_of(want.begin(), want.end(),
                                [&key](const auto& kv) { return kv.first == key; });
        if (!kept && ::fremovexattr(fd, key.c_str()) != 0 && errno != ENODATA) {
            throw_errno("cannot remove xattr " + key + " from " + display);
        }
    }
    for (const auto& [key, value] : want) write_xattr_fd(fd, key, value, display);
}

std::string xattrs_to_json(const Xattrs& xattrs) {
    if (xattrs.empty()) return "";
    nlohmann::json obj = nlohmann::json::object();
    for (const auto& [key, value] : xattrs) {
        std::string b64(4 * ((value.size() + 2) / 3) + 1, '\0');
        int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                reinterpret_cast<const unsigned char*>(value.data()),
                                static_cast<int>(value.size()));
        b64.resize(static_cast<size_t>(n));
        obj[key] = b64;
    }
    // Names may be any bytes; replace invalid UTF-8 rather than fail.
    return obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

FileTimes times_of(const struct stat& st) {
    return FileTimes{st.st_atim, st.st_mtim};
}

void apply_meta_fd(int fd, uint32_t uid, uint32_t gid, uint32_t mode, const Xattrs& xattrs,
                   const FileTimes& times, const std::string& display) {
    if (::fchown(fd, uid, gid) != 0) throw_errno("cannot change owner of " + display);
    if (::fchmod(fd, mode & 07777) != 0) throw_errno("cannot change mode of " + display);
    for (const auto& [key, value] : xattrs) write_xattr_fd(fd, key, value, display);
    struct timespec ts[2] = {times.atime, times.mtime};
    if (::futimens(fd, ts) != 0) throw_errno("cannot set times of " + display);
}

void apply_meta_at(int dirfd, const std::string& name, uint32_t uid, uint32_t gid, uint32_t mode,
                   bool set_mode, const Xattrs& xattrs, const FileTimes& times,
                   const std::string& display) {
    const char* n = name.c_str();
    if (::fchownat(dirfd, n, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("cannot change owner of " + display);
    }
    // The caller made `name` itself and it is not a symlink when set_mode is
    // true, so following it is not possible here.
    if (set_mode && ::fchmodat(dirfd, n, mode & 07777, 0) != 0) {
        throw_errno("cannot change mode of " + display);
    }
    for (const auto& [key, value] : xattrs) write_xattr_at(dirfd, name, key, value, display);
    struct timespec ts[2] = {times.atime, times.mtime};
    if (::utimensat(dirfd, n, ts, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("cannot set times of " + display);
    }
}

std::string read_symlink_at(int dirfd, const std::string& name, const std::string& display) {
    std::string buf(256, '\0');
    for (;;) {
        ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
        if (n < 0) throw_errno("cannot read symlink " + display);
        if (static_cast<size_t>(n) < buf.size()) {
            buf.resize(static_cast<size_t>(n));
            return buf;
        }
        buf.resize(buf.size() * 2);
    }
}

std::vector<Extent> data_extents(int fd, off_t size, const std::string& display) {
    std::vector<Extent> out;
    off_t pos = 0;
    while (pos < size) {
        off_t data = ::lseek(fd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole is left
            if (errno == EINVAL || errno == ENOTSUP) return {Extent{pos, size - pos}};
            throw_errno("cannot find data in " + display);
        }
        if (data >= size) break;
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) throw_errno("cannot find holes in " + display);
        hole = std::min(hole, size);
        out.push_back(Extent{data, hole - data});
        pos = hole;
    }
    return out;
}

void write_all_at(int fd, const void* buf, size_t len, off_t offset, const std::string& display) {
    const char* p = static_cast<const char*>(buf);
    while (len > 0) {
        ssize_t put = ::pwrite(fd, p, len, offset);
        if (put < 0) {
            if (errno == EINTR) continue;
            throw_errno("cannot write " + display);
        }
        p += put;
        len -= static_cast<size_t>(put);
        offset += put;
    }
}

void copy_file_content(int in, int out, off_t size, const std::string& display) {
    std::vector<char> buf(1 << 20);
    for (const Extent& ext : data_extents(in, size, display)) {
        off_t pos = ext.offset;
        off_t end = ext.offset + ext.length;
        while (pos < end) {
            size_t want = static_cast<size_t>(std::min<off_t>(end - pos, buf.size()));
            ssize_t got = ::pread(in, buf.data(), want, pos);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) throw_errno("cannot read " + display);
            if (got == 0) break;  // the file shrank; copy what is there
            write_all_at(out, buf.data(), static_cast<size_t>(got), pos, display);
            pos += got;
        }
    }
    if (::ftruncate(out, size) != 0) throw_errno("cannot set the size of " + display);
}

}  // namespace strata::codec
