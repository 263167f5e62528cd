// write_layer_tar: a layer directory's own changes as an uncompressed PAX tar.
//
// Invariants of the output:
//   - entries come in walk order (layer_walk.h): sorted, each directory
//     before its contents, so the same directory always gives the same tar;
//   - the overlay form is translated back to OCI: a whiteout (char 0:0)
//     becomes an empty ".wh.NAME" file (mode 0, root), an opaque directory
//     is its own entry followed by "DIR/.wh..wh..opq", trusted.overlay.*
//     xattrs are never written;
//   - a file met again under another name (same device and inode) is a
//     hard-link entry naming the first path;
//   - content is streamed in chunks; holes found with SEEK_DATA/SEEK_HOLE
//     are written as a PAX (GNU 1.0) sparse map and never read;
//   - the layer must be in the plain overlay form: a directory overlayfs
//     renamed (trusted.overlay.redirect) or a metadata-only copy-up
//     (trusted.overlay.metacopy) does not hold its content and is refused
//     rather than exported wrong (the posix backend mounts with
//     redirect_dir=off,metacopy=off, so its sandboxes never have them).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <spdlog/spdlog.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <vector>

#include "engine/archive_error.h"
#include "engine/error.h"
#include "engine/file_meta.h"
#include "engine/layer_codec.h"
#include "engine/layer_walk.h"
#include "engine/overlay_format.h"
#include "engine/safe_path.h"

namespace strata {

namespace {

using namespace codec;

constexpr size_t kChunk = 1 << 20;

using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

EntryPtr new_entry() {
    EntryPtr e(archive_entry_new(), &archive_entry_free);
    if (!e) throw Error("layer export: cannot allocate a tar entry");
    return e;
}

// Names are stored as UTF-8 when they are UTF-8, else as raw bytes
// (libarchive then marks the PAX header hdrcharset=BINARY).
void set_path(archive_entry* e, const std::string& p) {
    if (!archive_entry_update_pathname_utf8(e, p.c_str()))
        archive_entry_copy_pathname(e, p.c_str());
}
void set_symlink(archive_entry* e, const std::string& p) {
    if (!archive_entry_update_symlink_utf8(e, p.c_str())) archive_entry_copy_symlink(e, p.c_str());
}
void set_hardlink(archive_entry* e, const std::string& p) {
    if (!archive_entry_update_hardlink_utf8(e, p.c_str()))
        archive_entry_copy_hardlink(e, p.c_str());
}

// Switches this thread to a UTF-8 character type while it lives. libarchive
// converts names between the locale's charset and the UTF-8 of PAX records;
// under the "C" locale many UTF-8 names fail that conversion and are then
// written as raw bytes with hdrcharset=BINARY, which some readers warn
// about. Thread-local (uselocale), so the rest of the process is untouched;
// without a C.UTF-8 locale it does nothing and names still keep their bytes.
class Utf8LocaleScope {
  public:
    Utf8LocaleScope() : utf8_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr)) {
        if (utf8_ != nullptr) old_ = ::uselocale(utf8_);
    }
    ~Utf8LocaleScope() {
        if (utf8_ == nullptr) return;
        ::uselocale(old_);
        ::freelocale(utf8_);
    }
    Utf8LocaleScope(const Utf8LocaleScope&) = delete;
    Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;

  private:
    locale_t utf8_;
    locale_t old_ = nullptr;
};

std::string sibling(const std::string& rel, const std::string& name) {
    size_t slash = rel.rfind('/');
    return slash == std::string::npos ? name : rel.substr(0, slash + 1) + name;
}

class Exporter {
  public:
    explicit Exporter(ByteSink& out);
    ~Exporter() { archive_write_free(a_); }
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    void run(const std::filesystem::path& layer_dir);

  private:
    static la_ssize_t write_cb(struct archive* a, void* self, const void* buf, size_t n);
    [[noreturn]] void fail(const std::string& what);
    void header(archive_entry* e, const std::string& rel);
    void data(const void* buf, size_t n, const std::string& rel);

    bool visit(const WalkItem& it);
    bool node(const WalkItem& it, archive_entry* e);
    // An empty mode-0 root file: a whiteout or an opaque marker.
    void empty_file(const std::string& rel, const struct stat& st);
    void content(int fd, const struct stat& st, archive_entry* e, const std::string& rel);

    ByteSink& out_;
    struct archive* a_;
    std::exception_ptr pending_;
    std::map<std::pair<dev_t, ino_t>, std::string> seen_;
    std::vector<char> buf_;
};

Exporter::Exporter(ByteSink& out) : out_(out), a_(archive_write_new()), buf_(kChunk) {
    if (a_ == nullptr) throw Error("layer export: cannot allocate a tar writer");
    // xattrs only as SCHILY.xattr records, the form other engines read (by
    // default libarchive writes each one twice, also as LIBARCHIVE.xattr).
    if (archive_write_set_format_pax_restricted(a_) != ARCHIVE_OK ||
        archive_write_set_format_option(a_, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        archive_write_add_filter_none(a_) != ARCHIVE_OK ||
        archive_write_open(a_, this, nullptr, write_cb, nullptr) != ARCHIVE_OK) {
        try {
            fail("layer export: cannot start the tar");
        } catch (...) {
            archive_write_free(a_);
            throw;
        }
    }
}

la_ssize_t Exporter::write_cb(struct archive* a, void* self, const void* buf, size_t n) {
    auto* ex = static_cast<Exporter*>(self);
    try {
        ex->out_.write(buf, n);
        return static_cast<la_ssize_t>(n);
    } catch (...) {
        ex->pending_ = std::current_exception();
        archive_set_error(a, EIO, "the output could not be written");
        return -1;
    }
}

void Exporter::fail(const std::string& what) {
    throw_archive_error(a_, pending_, what);
}

void Exporter::header(archive_entry* e, const std::string& rel) {
    int r = archive_write_header(a_, e);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        fail("layer export: cannot write entry '" + rel + "'");
}

void Exporter::data(const void* buf, size_t n, const std::string& rel) {
    la_ssize_t put = archive_write_data(a_, buf, n);
    if (put < 0 || static_cast<size_t>(put) != n) {
        fail("layer export: cannot write the content of '" + rel + "'");
    }
}

void Exporter::run(const std::filesystem::path& layer_dir) {
    UniqueFd root = open_root_dir(layer_dir);
    walk_dir(root.get(), "", [this](const WalkItem& it) { return visit(it); });
    if (archive_write_close(a_) != ARCHIVE_OK) fail("layer export: cannot finish the tar");
}

void Exporter::empty_file(const std::string& rel, const struct stat& st) {
    EntryPtr e = new_entry();
    set_path(e.get(), rel);
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    header(e.get(), rel);
}

bool Exporter::visit(const WalkItem& it) {
    const struct stat& st = it.st;
    if (is_whiteout(st)) {
        empty_file(sibling(it.rel, kWhiteoutPrefix + it.name), st);
        return false;
    }
    if (S_ISSOCK(st.st_mode)) {
        spdlog::debug("layer export: skipped socket {}", it.rel);
        return false;
    }

    EntryPtr e = new_entry();
    set_path(e.get(), it.rel);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
    for (const auto& [key, value] : read_xattrs_at(it.dirfd, it.name, it.rel)) {
        archive_entry_xattr_add_entry(e.get(), key.c_str(), value.data(), value.size());
    }

    // A name met before under another path is written as a hard link.
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto [pos, fresh] = seen_.emplace(std::make_pair(st.st_dev, st.st_ino), it.rel);
        if (!fresh) {
            set_hardlink(e.get(), pos->second);
            archive_entry_set_size(e.get(), 0);
            header(e.get(), it.rel);
            return false;
        }
    }
    return node(it, e.get());
}

bool Exporter::node(const WalkItem& it, archive_entry* e) {
    const struct stat& st = it.st;
    const char* partial = S_ISDIR(st.st_mode)   ? "trusted.overlay.redirect"
                          : S_ISREG(st.st_mode) ? "trusted.overlay.metacopy"
                                                : nullptr;
    if (partial != nullptr && has_xattr_at(it.dirfd, it.name, partial, it.rel)) {
        throw Error("layer export: '" + it.rel + "' carries " + partial +
                    ", which a plain layer cannot hold");
    }
    if (S_ISDIR(st.st_mode)) {
        header(e, it.rel);
        UniqueFd dir = open_dir_at(it.dirfd, it.name);
        if (!dir.valid()) throw_errno("cannot open directory " + it.rel);
        if (is_opaque(dir.get())) empty_file(it.rel + "/" + kOpaqueMarker, st);
        return true;
    }
    if (S_ISREG(st.st_mode)) {
        UniqueFd fd(::openat(it.dirfd, it.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) throw_errno("cannot open " + it.rel);
        content(fd.get(), st, e, it.rel);
        return false;
    }
    if (S_ISLNK(st.st_mode)) {
        set_symlink(e, read_symlink_at(it.dirfd, it.name, it.rel));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        archive_entry_set_rdevmajor(e, major(st.st_rdev));
        archive_entry_set_rdevminor(e, minor(st.st_rdev));
    }
    header(e, it.rel);
    return false;
}

void Exporter::content(int fd, const struct stat& st, archive_entry* e, const std::string& rel) {
    off_t size = st.st_size;
    std::vector<Extent> extents = data_extents(fd, size, rel);
    off_t data_bytes = 0;
    for (const Extent& x : extents) data_bytes += x.length;
    archive_entry_set_size(e, size);
    if (data_bytes < size) {
        for (const Extent& x : extents) archive_entry_sparse_add_entry(e, x.offset, x.length);
        if (extents.empty()) archive_entry_sparse_add_entry(e, size, 0);  // all hole
    } else {
        extents = {Extent{0, size}};
    }
    header(e, rel);

    // The writer takes the whole logical content and drops the holes itself,
    // so holes are fed from a zero buffer instead of being read.
    static const std::vector<char> zeros(kChunk, '\0');
    off_t pos = 0;
    auto feed_zeros = [&](off_t until) {
        while (pos < until) {
            size_t n = static_cast<size_t>(std::min<off_t>(until - pos, kChunk));
            data(zeros.data(), n, rel);
            pos += static_cast<off_t>(n);
        }
    };
    for (const Extent& x : extents) {
        feed_zeros(x.offset);
        off_t end = x.offset + x.length;
        while (pos < end) {
            size_t want = static_cast<size_t>(std::min<off_t>(end - pos, kChunk));
            ssize_t got = ::pread(fd, buf_.data(), want, pos);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) throw_errno("cannot read " + rel);
            if (got == 0) break;  // the file shrank; the rest is written as zeros
            data(buf_.data(), static_cast<size_t>(got), rel);
            pos += got;
        }
    }
    feed_zeros(size);
}

}  // namespace

void write_layer_tar(const std::filesystem::path& layer_dir, ByteSink& out) {
    Utf8LocaleScope utf8;
    Exporter exporter(out);
    exporter.run(layer_dir);
}

}  // namespace strata
