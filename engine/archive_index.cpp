// Entry names, the choice between a tar file and a directory, and the
// ArchiveIndex over a directory (see archive_index.h).
//
// Invariant of the directory index: every name it answers for is a regular
// file whose real path, symlinks followed by the OS, lies inside the
// canonical root; the name it reports is that real path relative to the root.
#include "engine/archive_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <system_error>

#include "engine/error.h"

namespace strata {

std::optional<std::string> normalize_entry_name(const std::string& name) {
    std::vector<std::string_view> parts;
    std::string_view rest(name);
    while (!rest.empty()) {
        size_t slash = rest.find('/');
        std::string_view part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (parts.empty()) return std::nullopt;
            parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    if (parts.empty()) return std::nullopt;
    std::string out;
    for (std::string_view part : parts) {
        if (!out.empty()) out.push_back('/');
        out.append(part);
    }
    return out;
}

namespace {

// An open file descriptor, closed on destruction.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

// Reads a file of a layout directory to its end.
class FileSource : public ByteSource {
public:
    FileSource(const std::filesystem::path& path, std::string label)
        : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), label_(std::move(label)) {
        if (fd_.get() < 0) throw_errno(label_ + ": cannot open");
    }

    size_t read(void* buf, size_t n) override {
        for (;;) {
            ssize_t got = ::read(fd_.get(), buf, n);
            if (got >= 0) return static_cast<size_t>(got);
            if (errno != EINTR) throw_errno(label_ + ": read failed");
        }
    }

private:
    Fd fd_;
    std::string label_;
};

class DirIndex : public ArchiveIndex {
public:
    explicit DirIndex(const std::filesystem::path& path)
        : where_("image archive " + path.string()) {
        std::error_code ec;
        root_ = std::filesystem::canonical(path, ec);
        if (ec) throw Error(where_ + ": cannot open: " + ec.message());
    }

    std::optional<Entry> find(const std::string& name) const override {
        auto norm = normalize_entry_name(name);
        if (!norm) return std::nullopt;
        std::error_code ec;
        std::filesystem::path real = std::filesystem::canonical(root_ / *norm, ec);
        if (ec) return std::nullopt;
        std::filesystem::path rel = real.lexically_relative(root_);
        if (rel.empty() || *rel.begin() == "..") return std::nullopt;
        struct stat st {};
        if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
        return Entry{rel.generic_string(), static_cast<uint64_t>(st.st_size)};
    }

    std::string read_document(const std::string& name, uint64_t limit) const override {
        auto entry = find(name);
        if (!entry) throw Error(where_ + ": " + name + ": is not in the archive");
        if (entry->size > limit) throw too_large(name, entry->size, limit);
        FileSource src(root_ / entry->name, where_ + ": " + name);
        std::string text;
        char buf[64 * 1024];
        while (size_t n = src.read(buf, sizeof buf)) {
            if (text.size() + n > limit) throw too_large(name, text.size() + n, limit);
            text.append(buf, n);
        }
        return text;
    }

    std::unique_ptr<ByteSource> open_stream(const std::string& name) const override {
        auto entry = find(name);
        if (!entry) throw Error(where_ + ": blob '" + name + "' is not in the archive");
        return std::make_unique<FileSource>(root_ / entry->name, where_ + ": " + name);
    }

    std::vector<std::string> names() const override {
        std::vector<std::string> out;
        std::error_code ec;
        std::filesystem::recursive_directory_iterator it(root_, ec), end;
        for (; !ec && it != end; it.increment(ec)) {
            auto type = it->symlink_status(ec).type();
            if (type == std::filesystem::file_type::regular ||
                type == std::filesystem::file_type::symlink) {
                out.push_back(it->path().lexically_relative(root_).generic_string());
            }
        }
        if (ec) throw Error(where_ + ": cannot list the directory: " + ec.message());
        return out;
    }

    bool is_directory() const override { return true; }
    const std::string& where() const override { return where_; }

private:
    Error too_large(const std::string& name, uint64_t size, uint64_t limit) const {
        return Error(where_ + ": " + name + ": is " + std::to_string(size) +
                     " bytes, more than the limit of " + std::to_string(limit) + " for a document");
    }

    std::string where_;
    std::filesystem::path root_;
};

}  // namespace

std::unique_ptr<ArchiveIndex> open_dir_index(const std::filesystem::path& path) {
    return std::make_unique<DirIndex>(path);
}

std::unique_ptr<ArchiveIndex> ArchiveIndex::open(const std::filesystem::path& path) {
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) {
        throw Error("image archive " + path.string() + ": cannot open: " +
                    (ec ? ec.message() : std::string("no such file or directory")));
    }
    if (std::filesystem::is_directory(status)) return open_dir_index(path);
    return open_tar_index(path);
}

}  // namespace strata
