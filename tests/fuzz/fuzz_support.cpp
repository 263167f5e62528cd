// Helpers shared by the fuzz targets (see fuzz_support.h).
#include "tests/fuzz/fuzz_support.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>
#include <vector>

#include "engine/archive_index.h"
#include "engine/digest.h"
#include "engine/error.h"

// libFuzzer's own mutation, callable from a custom mutator.
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace strata::fuzz {

namespace fs = std::filesystem;

namespace {

// Never destroyed: the exit handler that empties it must find it intact,
// whatever order static destructors and exit handlers run in.
std::vector<fs::path>& temp_roots() {
    static auto* roots = new std::vector<fs::path>;
    return *roots;
}

void remove_temp_roots() {
    for (const fs::path& root : temp_roots()) {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
}

std::string file_digest(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("fuzz: cannot open " + path.string());
    Sha256 hash;
    char buf[16 * 1024];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw_errno("fuzz: cannot read " + path.string(), err);
        }
        if (n == 0) break;
        hash.update(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return hash.final_digest();
}

// "name=<hex value>" for every xattr of `path` (not followed), sorted.
std::string xattr_text(const fs::path& path) {
    ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
    if (len <= 0) return "";
    std::string names(static_cast<size_t>(len), '\0');
    len = ::llistxattr(path.c_str(), names.data(), names.size());
    if (len < 0) throw_errno("fuzz: cannot list xattrs of " + path.string());
    names.resize(static_cast<size_t>(len));

    std::vector<std::string> items;
    for (size_t pos = 0; pos < names.size();) {
        std::string name(names.c_str() + pos);
        pos += name.size() + 1;
        std::string value(64 * 1024, '\0');
        ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
        if (n < 0) throw_errno("fuzz: cannot read xattr " + name + " of " + path.string());
        std::string hex;
        static const char kHex[] = "0123456789abcdef";
        for (ssize_t i = 0; i < n; ++i) {
            unsigned char c = static_cast<unsigned char>(value[static_cast<size_t>(i)]);
            hex.push_back(kHex[c >> 4]);
            hex.push_back(kHex[c & 15]);
        }
        items.push_back(name + "=" + hex);
    }
    std::sort(items.begin(), items.end());
    std::string out;
    for (const std::string& item : items) out += " " + item;
    return out;
}

std::string entry_line(const fs::path& path, const std::string& rel) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) throw_errno("fuzz: cannot stat " + path.string());
    std::ostringstream line;
    line << rel << " mode=" << std::oct << st.st_mode << std::dec << " uid=" << st.st_uid
         << " gid=" << st.st_gid << " size=" << st.st_size << " nlink=" << st.st_nlink
         << " rdev=" << st.st_rdev << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec
         << " ctime=" << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec;
    if (S_ISREG(st.st_mode)) line << " data=" << file_digest(path);
    if (S_ISLNK(st.st_mode)) line << " target=" << fs::read_symlink(path).string();
    line << xattr_text(path);
    return line.str();
}

}  // namespace

void finding(const std::string& what) {
    std::fprintf(stderr, "strata fuzz finding: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

void verbose(const std::string& what) {
    static const bool on = std::getenv("STRATA_FUZZ_VERBOSE") != nullptr;
    if (on) std::fprintf(stderr, "strata fuzz: %s\n", what.c_str());
}

fs::path make_temp_root(const std::string& prefix) {
    const char* env = std::getenv("TMPDIR");
    std::string base = env != nullptr && *env != '\0' ? env : "/tmp";
    std::string templ = base + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw_errno("fuzz: cannot create " + templ);
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(remove_temp_roots); });
    temp_roots().push_back(templ);
    return templ;
}

void write_file(const fs::path& path, const std::string& data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_errno("fuzz: cannot create " + path.string());
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw_errno("fuzz: cannot write " + path.string(), err);
        }
        done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) throw_errno("fuzz: cannot close " + path.string());
}

std::string read_file(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_errno("fuzz: cannot open " + path.string());
    std::string out;
    char buf[64 * 1024];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw_errno("fuzz: cannot read " + path.string(), err);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

void extract_tar(const fs::path& tar, const fs::path& dest) {
    struct archive* a = archive_read_new();
    if (a == nullptr) throw Error("fuzz: cannot allocate a libarchive reader");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    auto fail = [&](const std::string& what) {
        std::string msg = archive_error_string(a) != nullptr ? archive_error_string(a) : "";
        archive_read_free(a);
        throw Error("fuzz: fixture " + tar.string() + ": " + what + ": " + msg);
    };
    if (archive_read_open_filename(a, tar.c_str(), 64 * 1024) != ARCHIVE_OK) fail("cannot open");
    struct archive_entry* e = nullptr;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        auto name = normalize_entry_name(archive_entry_pathname(e));
        if (!name) continue;
        fs::path out = dest / *name;
        if (archive_entry_filetype(e) == AE_IFDIR) {
            fs::create_directories(out);
            continue;
        }
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        fs::create_directories(out.parent_path());
        std::string data;
        char buf[64 * 1024];
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
            data.append(buf, static_cast<size_t>(n));
        }
        if (n < 0) fail("cannot read " + *name);
        write_file(out, data);
    }
    if (r != ARCHIVE_EOF) fail("cannot read a header");
    archive_read_free(a);
}

std::string tree_snapshot(const fs::path& root, const std::set<std::string>& opaque) {
    std::vector<std::string> lines{entry_line(root, ".")};
    fs::recursive_directory_iterator it(root), end;
    for (; it != end; ++it) {
        std::string rel = it->path().lexically_relative(root).generic_string();
        if (opaque.count(rel) != 0) {
            it.disable_recursion_pending();
            lines.push_back(rel + " type=" + std::to_string(int(it->symlink_status().type())));
            continue;
        }
        lines.push_back(entry_line(it->path(), rel));
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const std::string& line : lines) out += line + "\n";
    return out;
}

std::string snapshot_diff(const std::string& before, const std::string& after) {
    auto split = [](const std::string& text) {
        std::set<std::string> lines;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) lines.insert(line);
        return lines;
    };
    std::set<std::string> a = split(before), b = split(after);
    std::string out;
    for (const std::string& line : a) {
        if (b.count(line) == 0) out += "\n  - " + line;
    }
    for (const std::string& line : b) {
        if (a.count(line) == 0) out += "\n  + " + line;
    }
    return out;
}

namespace {

constexpr size_t kBlock = 512;

// The value of a numeric tar header field: octal digits (leading spaces
// allowed, ending at a space or NUL), or base-256 when the top bit of the
// first byte is set. nullopt when it is neither.
std::optional<uint64_t> tar_number(const uint8_t* field, size_t len) {
    if ((field[0] & 0x80) != 0) {
        uint64_t v = field[0] & 0x3f;
        for (size_t i = 1; i < len; ++i) {
            if (v > (UINT64_MAX >> 8)) return std::nullopt;
            v = (v << 8) | field[i];
        }
        return v;
    }
    size_t i = 0;
    while (i < len && field[i] == ' ') ++i;
    uint64_t v = 0;
    size_t digits = 0;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i, ++digits)
        v = v * 8 + (field[i] - '0');
    if (digits == 0) return std::nullopt;
    return v;
}

}  // namespace

void fix_tar_checksums(uint8_t* data, size_t size) {
    size_t pos = 0;
    while (pos + kBlock <= size) {
        uint8_t* h = data + pos;
        pos += kBlock;
        if (std::memcmp(h + 257, "ustar", 5) != 0) continue;  // not a header we know

        // The checksum counts its own field as eight spaces.
        unsigned sum = 0;
        for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
        char field[9];
        std::snprintf(field, sizeof field, "%06o", sum & 0777777);
        std::memcpy(h + 148, field, 6);
        h[154] = '\0';
        h[155] = ' ';

        // Entries without data: links, devices, directories, fifos.
        char type = static_cast<char>(h[156]);
        if (type >= '1' && type <= '6') continue;
        std::optional<uint64_t> n = tar_number(h + 124, 12);
        if (!n || *n > size) continue;
        pos += static_cast<size_t>((*n + kBlock - 1) / kBlock * kBlock);
    }
}

size_t mutate_tar(uint8_t* data, size_t size, size_t max_size) {
    size = LLVMFuzzerMutate(data, size, max_size);
    fix_tar_checksums(data, size);
    return size;
}

size_t MemorySource::read(void* buf, size_t n) {
    size_t k = std::min({n, chunk_, size_ - pos_});
    if (k != 0) std::memcpy(buf, data_ + pos_, k);
    pos_ += k;
    return k;
}

}  // namespace strata::fuzz
