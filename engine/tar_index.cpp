// ArchiveIndex over a tar file (see archive_index.h).
//
// Invariants: `nodes_` maps every normalised entry name to the last header
// with that name; a File node's `ordinal` is the 0-based position of its
// header in the archive, so a rescan that reads `ordinal` headers stops at
// it; `data_offset` is set only when the file is an uncompressed tar and the
// entry is stored contiguously (not sparse), and then the entry's `size`
// bytes start there in the file.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "engine/archive_index.h"
#include "engine/error.h"

namespace strata {
namespace {

constexpr size_t kBlockSize = 64 * 1024;
constexpr uint64_t kCacheEntryLimit = uint64_t{1} << 20;  // per entry, compressed tars only
constexpr uint64_t kCacheTotalLimit = uint64_t{16} << 20;

struct ArchiveFree {
    void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

std::string libarchive_error(archive* a) {
    const char* msg = archive_error_string(a);
    return msg != nullptr ? msg : "unknown libarchive error";
}

// A reader over the tar at `path`, opened, before its first header.
ArchivePtr open_reader(const std::filesystem::path& path, const std::string& where) {
    ArchivePtr a(archive_read_new());
    if (!a) throw Error(where + ": cannot allocate a libarchive reader");
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_empty(a.get());
    if (archive_read_open_filename(a.get(), path.c_str(), kBlockSize) != ARCHIVE_OK) {
        throw Error(where + ": cannot open: " + libarchive_error(a.get()));
    }
    return a;
}

// Reads the next header; false at the end. Throws Error on a damaged archive.
bool next_header(archive* a, archive_entry** entry, const std::string& where) {
    int r = archive_read_next_header(a, entry);
    if (r == ARCHIVE_EOF) return false;
    if (r < ARCHIVE_WARN) throw Error(where + ": not a readable tar: " + libarchive_error(a));
    return true;
}

// Streams one entry's bytes with pread from a known offset of the tar file.
class PreadSource : public ByteSource {
public:
    PreadSource(const std::filesystem::path& path, int64_t offset, uint64_t size, std::string label)
        : offset_(offset), remaining_(size), label_(std::move(label)) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw_errno(label_ + ": cannot open the archive");
    }
    ~PreadSource() override { ::close(fd_); }
    PreadSource(const PreadSource&) = delete;
    PreadSource& operator=(const PreadSource&) = delete;

    size_t read(void* buf, size_t n) override {
        if (remaining_ == 0 || n == 0) return 0;
        size_t want = n < remaining_ ? n : static_cast<size_t>(remaining_);
        for (;;) {
            ssize_t got = ::pread(fd_, buf, want, offset_);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) throw_errno(label_ + ": read failed");
            if (got == 0) throw Error(label_ + ": the archive ends inside this entry");
            offset_ += got;
            remaining_ -= static_cast<uint64_t>(got);
            return static_cast<size_t>(got);
        }
    }

private:
    int fd_ = -1;
    int64_t offset_;
    uint64_t remaining_;
    std::string label_;
};

// Streams one entry's bytes through a fresh libarchive reader that skipped
// the headers before it.
class ScanSource : public ByteSource {
public:
    ScanSource(const std::filesystem::path& path, uint64_t ordinal, const std::string& name,
               const std::string& where)
        : label_(where + ": " + name) {
        reader_ = open_reader(path, where);
        archive_entry* entry = nullptr;
        for (uint64_t i = 0; i <= ordinal; ++i) {
            if (!next_header(reader_.get(), &entry, where)) {
                throw Error(label_ + ": the archive changed since it was indexed");
            }
        }
        auto seen = normalize_entry_name(
            archive_entry_pathname(entry) != nullptr ? archive_entry_pathname(entry) : "");
        if (!seen || *seen != name) {
            throw Error(label_ + ": the archive changed since it was indexed");
        }
    }

    size_t read(void* buf, size_t n) override {
        la_ssize_t got = archive_read_data(reader_.get(), buf, n);
        if (got < 0) throw Error(label_ + ": " + libarchive_error(reader_.get()));
        return static_cast<size_t>(got);
    }

private:
    ArchivePtr reader_;
    std::string label_;
};

// Streams a copy of an entry kept in memory.
class StringSource : public ByteSource {
public:
    explicit StringSource(std::string data) : data_(std::move(data)) {}
    size_t read(void* buf, size_t n) override {
        size_t k = std::min(n, data_.size() - pos_);
        std::memcpy(buf, data_.data() + pos_, k);
        pos_ += k;
        return k;
    }

private:
    std::string data_;
    size_t pos_ = 0;
};

std::string parent_dir(const std::string& name) {
    size_t slash = name.rfind('/');
    return slash == std::string::npos ? "" : name.substr(0, slash);
}

class TarIndex : public ArchiveIndex {
public:
    TarIndex(const std::filesystem::path& path, bool allow_pread)
        : path_(path), where_("image archive " + path.string()) {
        build(allow_pread);
    }

    std::optional<Entry> find(const std::string& name) const override {
        auto hit = resolve(name);
        if (!hit) return std::nullopt;
        return Entry{hit->first, hit->second->size};
    }

    std::string read_document(const std::string& name, uint64_t limit) const override {
        auto hit = resolve(name);
        if (!hit) throw Error(where_ + ": " + name + ": is not in the archive");
        const Node& node = *hit->second;
        if (node.size > limit) {
            throw Error(where_ + ": " + name + ": is " + std::to_string(node.size) +
                        " bytes, more than the limit of " + std::to_string(limit) +
                        " for a document");
        }
        if (node.cached) return *node.cached;
        auto src = open_node(hit->first, node);
        std::string text(node.size, '\0');
        size_t got = 0;
        while (got < text.size()) {
            size_t n = src->read(text.data() + got, text.size() - got);
            if (n == 0) throw Error(where_ + ": " + name + ": the archive ends inside it");
            got += n;
        }
        return text;
    }

    std::unique_ptr<ByteSource> open_stream(const std::string& name) const override {
        auto hit = resolve(name);
        if (!hit) throw Error(where_ + ": blob '" + name + "' is not in the archive");
        return open_node(hit->first, *hit->second);
    }

    std::vector<std::string> names() const override { return order_; }
    bool is_directory() const override { return false; }
    const std::string& where() const override { return where_; }

private:
    enum class Kind { File, Symlink, Hardlink, Other };
    struct Node {
        Kind kind = Kind::Other;
        uint64_t size = 0;
        uint64_t ordinal = 0;
        int64_t data_offset = -1;
        std::string target;                 // link target as written in the header
        std::optional<std::string> cached;  // content kept from the indexing pass
    };

    void build(bool allow_pread);
    void add(archive* a, archive_entry* entry, uint64_t ordinal, bool compressed, bool allow_pread);
    std::optional<std::pair<std::string, const Node*>> resolve(const std::string& name) const;
    std::optional<std::string> follow(const std::string& link, const Node& node,
                                      const std::string& rest) const;

    std::unique_ptr<ByteSource> open_node(const std::string& name, const Node& node) const {
        if (node.cached) return std::make_unique<StringSource>(*node.cached);
        if (node.data_offset >= 0) {
            return std::make_unique<PreadSource>(path_, node.data_offset, node.size,
                                                 where_ + ": " + name);
        }
        return std::make_unique<ScanSource>(path_, node.ordinal, name, where_);
    }

    std::filesystem::path path_;
    std::string where_;
    std::unordered_map<std::string, Node> nodes_;
    std::vector<std::string> order_;
    uint64_t cached_bytes_ = 0;
    int64_t file_size_ = 0;
};

void TarIndex::build(bool allow_pread) {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) throw_errno(where_ + ": cannot open");
    if (!S_ISREG(st.st_mode)) throw Error(where_ + ": neither a regular file nor a directory");
    file_size_ = st.st_size;

    ArchivePtr a = open_reader(path_, where_);
    archive_entry* entry = nullptr;
    uint64_t ordinal = 0;
    bool compressed = false;
    while (next_header(a.get(), &entry, where_)) {
        if (ordinal == 0) {
            compressed = archive_filter_count(a.get()) != 1 ||
                         archive_filter_code(a.get(), 0) != ARCHIVE_FILTER_NONE;
        }
        add(a.get(), entry, ordinal++, compressed, allow_pread);
    }
}

void TarIndex::add(archive* a, archive_entry* entry, uint64_t ordinal, bool compressed,
                   bool allow_pread) {
    const char* raw = archive_entry_pathname(entry);
    auto name = normalize_entry_name(raw != nullptr ? raw : "");
    if (!name) return;  // "." or a name above the root: nothing can refer to it

    Node node;
    node.ordinal = ordinal;
    node.size = archive_entry_size(entry) > 0 ? uint64_t(archive_entry_size(entry)) : 0;
    const char* hardlink = archive_entry_hardlink(entry);
    if (hardlink != nullptr && node.size == 0) {
        node.kind = Kind::Hardlink;
        node.target = hardlink;
    } else if (archive_entry_filetype(entry) == AE_IFLNK) {
        node.kind = Kind::Symlink;
        const char* target = archive_entry_symlink(entry);
        node.target = target != nullptr ? target : "";
    } else if (archive_entry_filetype(entry) == AE_IFREG || hardlink != nullptr) {
        node.kind = Kind::File;
    }

    if (node.kind == Kind::File && !compressed && allow_pread &&
        archive_entry_sparse_count(entry) == 0) {
        int64_t offset = archive_filter_bytes(a, 0);
        // Compared without adding: a hostile header's size may be near 2^63.
        bool fits = offset >= 0 && offset <= file_size_ &&
                    node.size <= static_cast<uint64_t>(file_size_ - offset);
        if (fits) node.data_offset = offset;
    }
    if (node.kind == Kind::File && compressed && node.size <= kCacheEntryLimit &&
        cached_bytes_ + node.size <= kCacheTotalLimit) {
        std::string data(node.size, '\0');
        size_t got = 0;
        while (got < data.size()) {
            la_ssize_t n = archive_read_data(a, data.data() + got, data.size() - got);
            if (n < 0) throw Error(where_ + ": " + *name + ": " + libarchive_error(a));
            if (n == 0) throw Error(where_ + ": " + *name + ": the archive ends inside it");
            got += size_t(n);
        }
        cached_bytes_ += node.size;
        node.cached = std::move(data);
    }

    if (node.kind != Kind::Other && nodes_.find(*name) == nodes_.end()) order_.push_back(*name);
    nodes_[*name] = std::move(node);
}

// Where `link` (a Symlink or Hardlink node) points, with `rest` (the
// components after it, possibly "") appended, normalised.
std::optional<std::string> TarIndex::follow(const std::string& link, const Node& node,
                                            const std::string& rest) const {
    std::string base;
    if (node.kind == Kind::Hardlink || (!node.target.empty() && node.target[0] == '/')) {
        base = node.target;
    } else {
        std::string dir = parent_dir(link);
        base = dir.empty() ? node.target : dir + "/" + node.target;
    }
    return normalize_entry_name(rest.empty() ? base : base + "/" + rest);
}

std::optional<std::pair<std::string, const TarIndex::Node*>> TarIndex::resolve(
    const std::string& name) const {
    auto path = normalize_entry_name(name);
    int hops = 0;
    while (path) {
        // Walk the components; the first link met restarts the walk at its target.
        bool restarted = false;
        size_t pos = 0;
        while (!restarted) {
            size_t slash = path->find('/', pos);
            bool last = slash == std::string::npos;
            std::string prefix = path->substr(0, slash);
            auto it = nodes_.find(prefix);
            const Node* node = it == nodes_.end() ? nullptr : &it->second;
            if (node != nullptr &&
                (node->kind == Kind::Symlink || (node->kind == Kind::Hardlink && last))) {
                if (++hops > kMaxLinkHops) {
                    throw Error(where_ + ": '" + name + "': more than " +
                                std::to_string(kMaxLinkHops) + " links (a link loop?)");
                }
                path = follow(prefix, *node, last ? "" : path->substr(slash + 1));
                restarted = true;
            } else if (last) {
                if (node == nullptr || node->kind != Kind::File) return std::nullopt;
                return std::make_pair(*path, node);
            } else if (node != nullptr && node->kind != Kind::Other) {
                return std::nullopt;  // a file used as a directory
            } else {
                pos = slash + 1;
            }
        }
    }
    return std::nullopt;
}

}  // namespace

std::unique_ptr<ArchiveIndex> open_tar_index(const std::filesystem::path& path, bool allow_pread) {
    return std::make_unique<TarIndex>(path, allow_pread);
}

}  // namespace strata
