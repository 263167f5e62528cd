// Component-wise, non-following path resolution (see safe_path.h).
//
// Invariant: no function here hands a path string containing "/" to a
// syscall that resolves it, except the caller's own layer root; every other
// lookup is one component relative to a descriptor already checked to be a
// real directory.
#include "engine/safe_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/overlay_format.h"

namespace strata::codec {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

int UniqueFd::release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
}

void UniqueFd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

std::vector<std::string> split_entry_path(std::string_view name) {
    std::vector<std::string> comps;
    size_t pos = 0;
    while (pos <= name.size()) {
        size_t end = name.find('/', pos);
        if (end == std::string_view::npos) end = name.size();
        std::string_view comp = name.substr(pos, end - pos);
        if (comp == "..") throw Error("path escapes the layer");
        if (!comp.empty() && comp != ".") comps.emplace_back(comp);
        pos = end + 1;
    }
    return comps;
}

std::string join_components(const std::vector<std::string>& comps, size_t count) {
    std::string out;
    for (size_t i = 0; i < count && i < comps.size(); ++i) {
        if (i > 0) out += '/';
        out += comps[i];
    }
    return out;
}

void check_name_length(const std::vector<std::string>& comps, const std::string& joined,
                       const std::string& what) {
    for (const std::string& c : comps) {
        if (c.size() > kMaxComponent) {
            throw Error("component '" + shown_name(c) + "' is " + std::to_string(c.size()) +
                        " bytes, more than the " + std::to_string(kMaxComponent) +
                        " a file name may have");
        }
    }
    if (joined.size() > kMaxPath) {
        throw Error(what + " is " + std::to_string(joined.size()) + " bytes, more than the " +
                    std::to_string(kMaxPath) + " a path may have");
    }
}

std::string shown_name(std::string_view name) {
    constexpr size_t kLong = 300;
    constexpr size_t kKept = 200;
    std::string_view part = name.size() > kLong ? name.substr(0, kKept) : name;
    std::string out;
    for (unsigned char c : part) {
        if (c < 0x20 || c == 0x7f) {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (part.size() < name.size()) out += "...[" + std::to_string(name.size()) + " bytes]";
    return out;
}

UniqueFd open_root_dir(const std::filesystem::path& root) {
    UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) throw_errno("cannot open layer directory " + root.string());
    return fd;
}

UniqueFd open_dir_at(int dirfd, const std::string& name) {
    return UniqueFd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

UniqueFd open_dir_path(int rootfd, const std::vector<std::string>& comps, size_t count) {
    UniqueFd cur(::fcntl(rootfd, F_DUPFD_CLOEXEC, 0));
    for (size_t i = 0; i < count && cur.valid(); ++i) cur = open_dir_at(cur.get(), comps[i]);
    return cur;
}

std::vector<std::string> sorted_names(int dirfd, const std::string& display) {
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throw_errno("cannot list " + display);
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
        ::close(dup);
        throw_errno("cannot list " + display);
    }
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(std::move(n));
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) throw_errno("cannot list " + display, err);
    // std::string compares as unsigned bytes: the order is bytewise.
    std::sort(names.begin(), names.end());
    return names;
}

namespace {

// Empties the open directory `fd` (recursively), never following symlinks.
void empty_dir(int fd, const std::string& display) {
    for (const auto& n : sorted_names(fd, display)) remove_tree_at(fd, n, display + "/" + n);
}

}  // namespace

void remove_tree_at(int dirfd, const std::string& name, const std::string& display) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return;
        throw_errno("cannot stat " + display);
    }
    if (S_ISDIR(st.st_mode)) {
        UniqueFd sub = open_dir_at(dirfd, name);
        if (!sub.valid()) throw_errno("cannot open " + display);
        empty_dir(sub.get(), display);
        if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) {
            throw_errno("cannot remove directory " + display);
        }
        return;
    }
    if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
        throw_errno("cannot remove " + display);
    }
}

bool layer_hides_lower(int rootfd, const std::vector<std::string>& comps, size_t count) {
    UniqueFd cur(::fcntl(rootfd, F_DUPFD_CLOEXEC, 0));
    if (!cur.valid()) throw_errno("cannot duplicate a layer descriptor");
    for (size_t i = 0; i < count; ++i) {
        UniqueFd next = open_dir_at(cur.get(), comps[i]);
        if (!next.valid()) {
            struct stat st;
            bool exists = ::fstatat(cur.get(), comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
            return exists;  // absent: nothing here hides; present non-directory: hides
        }
        if (is_opaque(next.get())) return true;
        cur = std::move(next);
    }
    return false;
}

LowerChain::LowerChain(std::vector<std::filesystem::path> layers) : view_(std::move(layers)) {}

std::optional<LowerChain::Hit> LowerChain::lookup(const std::string& rel) const {
    if (rel.empty() || view_.layers().empty()) return std::nullopt;
    std::optional<MergedView::Hit> hit = view_.lookup(rel);
    if (!hit) return std::nullopt;

    // Re-open the hit from its layer root without following anything.
    std::vector<std::string> comps = split_entry_path(rel);
    UniqueFd root = open_root_dir(view_.layers()[hit->layer_index]);
    UniqueFd parent = open_dir_path(root.get(), comps, comps.size() - 1);
    if (!parent.valid()) return std::nullopt;
    struct stat st;
    if (::fstatat(parent.get(), comps.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return std::nullopt;
    }
    if (st.st_dev != hit->st.st_dev || st.st_ino != hit->st.st_ino) return std::nullopt;
    return Hit{std::move(parent), comps.back(), st, hit->layer_index};
}

}  // namespace strata::codec
