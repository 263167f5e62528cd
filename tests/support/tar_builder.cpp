// Crafted tar archives for tests (see tar_builder.h).
#include "tests/support/tar_builder.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace strata::test {

namespace {

la_ssize_t append_cb(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<std::string*>(self)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
}

std::string dirname_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

std::string basename_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

void check(struct archive* a, int r, const std::string& what) {
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN) return;
    const char* msg = archive_error_string(a);
    throw Error("tar builder: " + what + ": " + (msg != nullptr ? msg : "libarchive error"));
}

}  // namespace

TarBuilder::TarBuilder(Format format) : a_(archive_write_new()) {
    if (a_ == nullptr) throw Error("tar builder: cannot allocate a writer");
    int r = format == Format::Pax   ? archive_write_set_format_pax(a_)
            : format == Format::Gnu ? archive_write_set_format_gnutar(a_)
                                    : archive_write_set_format_ustar(a_);
    check(a_, r, "cannot set the format");
    check(a_, archive_write_add_filter_none(a_), "cannot set the filter");
    check(a_, archive_write_open(a_, &out_, nullptr, append_cb, nullptr), "cannot open");
}

TarBuilder::~TarBuilder() {
    archive_write_free(a_);
}

struct archive_entry* TarBuilder::make(const std::string& path, unsigned type, const TarMeta& meta,
                                       uint32_t default_mode) {
    if (finished_) throw Error("tar builder: entry '" + path + "' added after finish()");
    struct archive_entry* e = archive_entry_new();
    if (!archive_entry_update_pathname_utf8(e, path.c_str())) {
        archive_entry_copy_pathname(e, path.c_str());
    }
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, meta.mode == TarMeta::kDefaultMode ? default_mode : meta.mode);
    archive_entry_set_uid(e, meta.uid);
    archive_entry_set_gid(e, meta.gid);
    archive_entry_set_mtime(e, meta.mtime, 0);
    for (const auto& [name, value] : meta.xattrs) {
        archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    }
    return e;
}

void TarBuilder::commit(struct archive_entry* e, const std::string& path, const std::string& data) {
    int r = archive_write_header(a_, e);
    archive_entry_free(e);
    check(a_, r, "cannot write the header of '" + path + "'");
    if (!data.empty()) {
        la_ssize_t n = archive_write_data(a_, data.data(), data.size());
        if (n < 0 || static_cast<size_t>(n) != data.size()) {
            check(a_, ARCHIVE_FATAL, "cannot write the content of '" + path + "'");
        }
    }
}

TarBuilder& TarBuilder::file(const std::string& path, const std::string& content, TarMeta meta) {
    struct archive_entry* e = make(path, AE_IFREG, meta, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    commit(e, path, content);
    return *this;
}

TarBuilder& TarBuilder::sparse_file(const std::string& path, uint64_t size,
                                    const std::vector<std::pair<uint64_t, std::string>>& runs,
                                    TarMeta meta) {
    struct archive_entry* e = make(path, AE_IFREG, meta, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    // The writer takes the whole logical content and leaves the holes out.
    std::string dense(size, '\0');
    for (const auto& [offset, data] : runs) {
        archive_entry_sparse_add_entry(e, static_cast<la_int64_t>(offset),
                                       static_cast<la_int64_t>(data.size()));
        std::copy(data.begin(), data.end(), dense.begin() + static_cast<long>(offset));
    }
    commit(e, path, dense);
    return *this;
}

TarBuilder& TarBuilder::dir(const std::string& path, TarMeta meta) {
    commit(make(path, AE_IFDIR, meta, 0755), path, "");
    return *this;
}

TarBuilder& TarBuilder::symlink(const std::string& path, const std::string& target, TarMeta meta) {
    struct archive_entry* e = make(path, AE_IFLNK, meta, 0777);
    if (!archive_entry_update_symlink_utf8(e, target.c_str())) {
        archive_entry_copy_symlink(e, target.c_str());
    }
    commit(e, path, "");
    return *this;
}

TarBuilder& TarBuilder::hardlink(const std::string& path, const std::string& target, TarMeta meta) {
    struct archive_entry* e = make(path, AE_IFREG, meta, 0644);
    if (!archive_entry_update_hardlink_utf8(e, target.c_str())) {
        archive_entry_copy_hardlink(e, target.c_str());
    }
    archive_entry_set_size(e, 0);
    commit(e, path, "");
    return *this;
}

TarBuilder& TarBuilder::device(const std::string& path, char type, uint32_t major, uint32_t minor,
                               TarMeta meta) {
    struct archive_entry* e = make(path, type == 'b' ? AE_IFBLK : AE_IFCHR, meta, 0644);
    archive_entry_set_rdevmajor(e, major);
    archive_entry_set_rdevminor(e, minor);
    commit(e, path, "");
    return *this;
}

TarBuilder& TarBuilder::fifo(const std::string& path, TarMeta meta) {
    commit(make(path, AE_IFIFO, meta, 0644), path, "");
    return *this;
}

TarBuilder& TarBuilder::whiteout(const std::string& path) {
    return file(dirname_of(path) + ".wh." + basename_of(path), "", TarMeta{.mode = 0});
}

TarBuilder& TarBuilder::opaque(const std::string& dir) {
    std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
    return file(prefix + ".wh..wh..opq", "", TarMeta{.mode = 0});
}

std::string TarBuilder::finish() {
    if (!finished_) {
        check(a_, archive_write_close(a_), "cannot finish the archive");
        finished_ = true;
    }
    return out_;
}

std::string compress(const std::string& data, Compression c) {
    if (c == Compression::None) return data;
    std::string out;
    struct archive* a = archive_write_new();
    try {
        check(a, archive_write_set_format_raw(a), "cannot set the raw format");
        check(a,
              c == Compression::Gzip ? archive_write_add_filter_gzip(a)
                                     : archive_write_add_filter_zstd(a),
              "cannot add the compression filter");
        // No block padding: bytes after a compressed frame are not part of it.
        check(a, archive_write_set_bytes_in_last_block(a, 1), "cannot set the padding");
        check(a, archive_write_open(a, &out, nullptr, append_cb, nullptr), "cannot open");
        struct archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, "data");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
        int r = archive_write_header(a, e);
        archive_entry_free(e);
        check(a, r, "cannot start the compressed stream");
        if (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0) {
            check(a, ARCHIVE_FATAL, "cannot compress");
        }
        check(a, archive_write_close(a), "cannot finish the compressed stream");
    } catch (...) {
        archive_write_free(a);
        throw;
    }
    archive_write_free(a);
    return out;
}

size_t StringByteSource::read(void* buf, size_t n) {
    size_t take = std::min({n, chunk_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, take);
    pos_ += take;
    return take;
}

}  // namespace strata::test
