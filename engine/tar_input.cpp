// The two-stage libarchive reading pipeline (see tar_input.h).
//
// Invariants: every byte the inner (tar) reader receives has been hashed and
// counted exactly once, in the order received; finish() adds the bytes the
// inner reader never asked for, so the digest always covers the whole
// decompressed stream. No C++ exception escapes a libarchive callback.
// The checks on the raw tar bytes are in tar_input_checks.cpp.
#include "engine/archive_error.h"
#include "engine/tar_input.h"

#include <archive.h>
#include <archive_entry.h>
#include <spdlog/spdlog.h>

#include <limits>

#include "engine/error.h"
#include "engine/safe_path.h"

namespace strata::codec {

namespace {

constexpr size_t kBufferSize = 64 * 1024;

// The expansion ratio is judged only after this much output. Real layers
// hold zero-filled files (written densely by most engines) that compress
// far better than 1000:1 in their first megabytes, so a small layer is
// never refused for its ratio; a bomb is stopped after the larger of this
// and max_ratio times its compressed size.
constexpr uint64_t kRatioFloor = uint64_t{64} << 20;

using FilterSupport = int (*)(struct archive*);

// Compression filters libarchive runs in-process. Filters that would start
// an external program (lrzip, lzop, grzip) are never registered for input an
// archive controls, and "uu" is left out because it guesses from text that a
// plain tar may contain.
constexpr FilterSupport kFilters[] = {
    archive_read_support_filter_gzip, archive_read_support_filter_zstd,
    archive_read_support_filter_xz,   archive_read_support_filter_lzma,
    archive_read_support_filter_lzip, archive_read_support_filter_bzip2,
    archive_read_support_filter_lz4,  archive_read_support_filter_compress,
};

// Registers on `a` only the filters this libarchive build implements itself
// (a probe reader tells, because a filter that needs a program answers
// ARCHIVE_WARN).
void add_inprocess_filters(struct archive* a) {
    struct archive* probe = archive_read_new();
    if (probe == nullptr) throw Error("layer tar: cannot allocate a reader");
    for (FilterSupport add : kFilters) {
        if (add(probe) == ARCHIVE_OK) add(a);
    }
    archive_read_free(probe);
}

uint32_t id_value(int64_t id, const std::string& path, const char* what) {
    if (id < 0 || id > std::numeric_limits<uint32_t>::max()) {
        throw Error("layer tar entry '" + shown_name(path) + "': " + what + " " +
                    std::to_string(id) + " is out of range");
    }
    return static_cast<uint32_t>(id);
}

TarEntry::Kind entry_kind(struct archive_entry* e, const std::string& path) {
    if (archive_entry_hardlink(e) != nullptr) return TarEntry::Kind::HardLink;
    switch (archive_entry_filetype(e)) {
        case AE_IFREG:
            return TarEntry::Kind::File;
        case AE_IFDIR:
            return TarEntry::Kind::Dir;
        case AE_IFLNK:
            return TarEntry::Kind::Symlink;
        case AE_IFCHR:
            return TarEntry::Kind::CharDev;
        case AE_IFBLK:
            return TarEntry::Kind::BlockDev;
        case AE_IFIFO:
            return TarEntry::Kind::Fifo;
        default:
            throw Error("layer tar entry '" + shown_name(path) + "': unsupported entry type");
    }
}

void convert_entry(struct archive_entry* e, TarEntry& out) {
    out.kind = entry_kind(e, out.path);
    out.mode = static_cast<uint32_t>(archive_entry_perm(e)) & 07777;
    out.uid = id_value(archive_entry_uid(e), out.path, "uid");
    out.gid = id_value(archive_entry_gid(e), out.path, "gid");
    out.size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (out.size < 0) throw Error("layer tar entry '" + shown_name(out.path) + "': negative size");

    out.times.mtime = {static_cast<time_t>(archive_entry_mtime(e)), archive_entry_mtime_nsec(e)};
    out.times.atime = out.times.mtime;
    if (archive_entry_atime_is_set(e)) {
        out.times.atime = {static_cast<time_t>(archive_entry_atime(e)),
                           archive_entry_atime_nsec(e)};
    }

    out.link.clear();
    const char* link = out.kind == TarEntry::Kind::HardLink  ? archive_entry_hardlink(e)
                       : out.kind == TarEntry::Kind::Symlink ? archive_entry_symlink(e)
                                                             : "";
    if (link == nullptr) {
        throw Error("layer tar entry '" + shown_name(out.path) + "': unreadable link");
    }
    out.link = link;
    out.dev_major = static_cast<uint32_t>(archive_entry_rdevmajor(e));
    out.dev_minor = static_cast<uint32_t>(archive_entry_rdevminor(e));

    out.xattrs.clear();
    archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        out.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
    }

    out.sparse.clear();
    if (archive_entry_sparse_reset(e) > 0) {
        la_int64_t offset = 0;
        la_int64_t length = 0;
        while (archive_entry_sparse_next(e, &offset, &length) == ARCHIVE_OK) {
            out.sparse.emplace_back(offset, length);
        }
    }
}

}  // namespace

TarInput::TarInput(ByteSource& src, uint64_t max_bytes)
    : TarInput(src, ApplyLimits{.max_bytes = max_bytes}) {}

TarInput::TarInput(ByteSource& src, const ApplyLimits& limits)
    : src_(src), limits_(limits), src_buf_(kBufferSize), tar_buf_(kBufferSize) {
    outer_ = archive_read_new();
    inner_ = archive_read_new();
    if (outer_ == nullptr || inner_ == nullptr) {
        archive_read_free(outer_);
        archive_read_free(inner_);
        throw Error("layer tar: cannot allocate a reader");
    }
    try {
        add_inprocess_filters(outer_);
        archive_read_support_format_raw(outer_);
        archive_read_support_format_empty(outer_);
        if (archive_read_open(outer_, this, nullptr, outer_read, nullptr) != ARCHIVE_OK) {
            fail(outer_, "layer tar: cannot open the stream");
        }
        struct archive_entry* blob = nullptr;
        int r = archive_read_next_header(outer_, &blob);
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN && r != ARCHIVE_EOF) {
            fail(outer_, "layer tar: cannot read the stream");
        }
        outer_has_data_ = r != ARCHIVE_EOF;

        archive_read_support_format_tar(inner_);
        archive_read_support_format_empty(inner_);
        if (archive_read_open(inner_, this, nullptr, inner_read, nullptr) != ARCHIVE_OK) {
            fail(inner_, "layer tar: not a tar archive");
        }
    } catch (...) {
        archive_read_free(inner_);
        archive_read_free(outer_);
        throw;
    }
}

TarInput::~TarInput() {
    if (inner_ != nullptr) archive_read_free(inner_);
    if (outer_ != nullptr) archive_read_free(outer_);
}

ssize_t TarInput::outer_read(struct archive* a, void* self, const void** buf) {
    auto* in = static_cast<TarInput*>(self);
    try {
        size_t n = in->src_.read(in->src_buf_.data(), in->src_buf_.size());
        in->src_bytes_ += n;
        if (n == 0) in->src_eof_ = true;
        *buf = in->src_buf_.data();
        return static_cast<ssize_t>(n);
    } catch (...) {
        in->pending_ = std::current_exception();
        archive_set_error(a, EIO, "the layer stream could not be read");
        return -1;
    }
}

ssize_t TarInput::inner_read(struct archive* a, void* self, const void** buf) {
    auto* in = static_cast<TarInput*>(self);
    if (!in->outer_has_data_ || in->outer_done_) return 0;
    try {
        la_ssize_t n = archive_read_data(in->outer_, in->tar_buf_.data(), in->tar_buf_.size());
        if (n < 0) {
            const char* msg = archive_error_string(in->outer_);
            if (!in->pending_) {
                in->pending_ = std::make_exception_ptr(
                    Error(std::string("cannot decompress: ") +
                          (msg            ? msg
                           : in->src_eof_ ? "the compressed stream ends early"
                                          : "the compressed stream is corrupt")));
            }
            archive_set_error(a, EIO, "the layer stream could not be decompressed");
            return -1;
        }
        if (n == 0) {
            in->outer_done_ = true;
            return 0;
        }
        in->hash_.update(in->tar_buf_.data(), static_cast<size_t>(n));
        in->count_tar_bytes(static_cast<size_t>(n));
        in->keep_window(in->tar_buf_.data(), static_cast<size_t>(n));
        *buf = in->tar_buf_.data();
        return n;
    } catch (...) {
        in->pending_ = std::current_exception();
        archive_set_error(a, EIO, "the layer stream could not be read");
        return -1;
    }
}

void TarInput::count_tar_bytes(size_t n) {
    tar_bytes_ += n;
    if (tar_bytes_ > limits_.max_bytes) {
        std::string limit = std::to_string(limits_.max_bytes);
        throw Error("more than " + limit + " uncompressed tar bytes (limit " + limit + ")");
    }
    uint64_t ratio = limits_.max_ratio;
    if (ratio != 0 && tar_bytes_ >= kRatioFloor && tar_bytes_ / ratio > src_bytes_) {
        std::string limit = std::to_string(ratio);
        throw Error("the uncompressed stream is more than " + limit +
                    " times its compressed size (" + std::to_string(src_bytes_) +
                    " compressed bytes gave " + std::to_string(tar_bytes_) + "; limit " + limit +
                    ")");
    }
}

void TarInput::fail(struct archive* a, const std::string& context) {
    throw_archive_error(a, pending_, context);
}

bool TarInput::next(TarEntry& entry) {
    struct archive_entry* e = nullptr;
    reading_header_ = true;
    int r = archive_read_next_header(inner_, &e);
    reading_header_ = false;
    la_int64_t stop = archive_filter_bytes(inner_, 0);
    if (stop >= 0) data_start_ = static_cast<uint64_t>(stop);
    if (r == ARCHIVE_EOF) {
        note_end_marker();
        return false;
    }
    std::string where = last_path_.empty() ? std::string("layer tar: first entry")
                                           : "layer tar entry after '" + last_path_ + "'";
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(inner_, where);
    if (r == ARCHIVE_WARN) {
        const char* msg = archive_error_string(inner_);
        spdlog::debug("layer tar: warning at {}: {}", where, msg != nullptr ? msg : "");
    }

    const char* path = archive_entry_pathname(e);
    if (path == nullptr) path = archive_entry_pathname_utf8(e);
    if (path == nullptr) throw Error(where + ": the entry name cannot be read");
    entry.path = path;
    last_path_ = shown_name(entry.path);
    check_headers(archive_read_header_position(inner_), stop, last_path_);
    convert_entry(e, entry);
    return true;
}

bool TarInput::read_block(const void** buf, size_t* len, int64_t* offset) {
    la_int64_t off = 0;
    int r = archive_read_data_block(inner_, buf, len, &off);
    if (r == ARCHIVE_EOF) return false;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(inner_, "cannot read the content");
    *offset = off;
    return true;
}

void TarInput::finish() {
    // The tar reader stopped at the end-of-archive marker; the rest of the
    // decompressed stream is padding that still belongs to the digest.
    while (outer_has_data_ && !outer_done_) {
        la_ssize_t n = archive_read_data(outer_, tar_buf_.data(), tar_buf_.size());
        if (n < 0) fail(outer_, "layer tar: cannot read the padding after the archive");
        if (n == 0) break;
        hash_.update(tar_buf_.data(), static_cast<size_t>(n));
        if (lone_end_) check_after_lone_block(tar_buf_.data(), static_cast<size_t>(n), tar_bytes_);
        try {
            count_tar_bytes(static_cast<size_t>(n));
        } catch (const Error& e) {
            throw Error(std::string("layer tar: ") + e.what());
        }
    }
    outer_done_ = true;
    archive_read_free(inner_);
    inner_ = nullptr;
    archive_read_free(outer_);
    outer_ = nullptr;

    // Whatever follows the compressed stream is read too, so the caller's
    // source is always consumed to its end.
    while (src_.read(src_buf_.data(), src_buf_.size()) > 0) {
    }
}

std::string TarInput::digest() {
    return hash_.final_digest();
}

}  // namespace strata::codec
