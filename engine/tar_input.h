// The reading side of the layer tar codec: a layer stream in, tar entries
// and their data out, in one pass with bounded memory.
//
// Two libarchive readers are chained. The outer one detects and removes the
// compression (plain, gzip, zstd and the other in-process filters) using the
// "raw" format, which hands the decompressed stream out as one blob; an
// empty input is an empty stream. The inner one parses that stream as a tar
// (ustar, GNU and PAX, sparse entries included). The bytes passing from the
// outer to the inner reader are hashed and counted: they are the
// uncompressed layer tar, and its sha256 is the layer's diff digest. After
// the tar's end-of-archive marker, finish() reads the rest of the
// decompressed stream (trailing padding) into the digest and then the rest
// of the source.
//
// Limits (ApplyLimits): more than max_bytes of uncompressed tar is an
// Error, and so is an uncompressed stream more than max_ratio times the
// compressed bytes read so far, checked once 64 MiB of it has been read (a
// decompression bomb is stopped after the larger of 64 MiB and max_ratio
// times its own size).
//
// Checks libarchive does not make, on the header blocks of each entry (the
// bytes from its first header to its data, kept until libarchive consumed
// them): an entry named both by a PAX "path" record and a GNU long-name
// record (or by two of either) is refused, because tar readers disagree on
// which one wins; the same for "linkpath" and GNU long-link records. At the
// end, a lone zero block followed by more data is refused (the end marker is
// two zero blocks; what follows a complete marker is padding).
//
// Exceptions never cross libarchive: a failing ByteSource read is caught in
// the callback, libarchive is told the read failed, and the saved exception
// is raised again (with context) once libarchive returns.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "engine/byte_stream.h"
#include "engine/file_meta.h"
#include "engine/layer_codec.h"

struct archive;

namespace strata::codec {

// One tar entry's header, independent of libarchive.
struct TarEntry {
    enum class Kind { File, Dir, Symlink, HardLink, CharDev, BlockDev, Fifo };

    std::string path;  // as the archive spells it
    Kind kind = Kind::File;
    uint32_t mode = 0;  // permission bits, 07777
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t size = 0;  // content bytes (the full size for sparse files)
    FileTimes times;   // atime is the mtime when the archive has none
    std::string link;  // symlink target or hard-link target, as spelled
    uint32_t dev_major = 0;
    uint32_t dev_minor = 0;
    Xattrs xattrs;  // as the archive gives them, in order
    // The data runs of a sparse entry (offset, length), as its map gives
    // them; empty for other entries.
    std::vector<std::pair<int64_t, int64_t>> sparse;
};

class TarInput {
  public:
    // Reads from `src` within `limits` (max_entries is the caller's to
    // count). Throws Error if the stream cannot be opened.
    TarInput(ByteSource& src, const ApplyLimits& limits);
    // The same with ApplyLimits{} except for max_bytes.
    TarInput(ByteSource& src, uint64_t max_bytes);
    ~TarInput();
    TarInput(const TarInput&) = delete;
    TarInput& operator=(const TarInput&) = delete;

    // Reads the next entry header into `entry`. Returns false at the end of
    // the archive. Throws Error naming the previous entry when the archive
    // is malformed or the source fails, and naming the entry when its name
    // is ambiguous (see above).
    bool next(TarEntry& entry);

    // Reads the next run of the current entry's content. Returns false when
    // the entry has no more; `offset` is where the run goes in the file
    // (runs skip the holes of sparse entries). Throws Error on failure.
    bool read_block(const void** buf, size_t* len, int64_t* offset);

    // Reads the rest of the decompressed stream and of the source. Throws
    // Error on failure, past a limit, or when data follows a lone zero
    // block at the end of the archive.
    void finish();

    // "sha256:<hex>" of the uncompressed tar; call once, after finish().
    std::string digest();

    uint64_t tar_bytes() const { return tar_bytes_; }

  private:
    static ssize_t outer_read(struct archive* a, void* self, const void** buf);
    static ssize_t inner_read(struct archive* a, void* self, const void** buf);
    [[noreturn]] void fail(struct archive* a, const std::string& context);

    // Counts `n` more uncompressed bytes; throws Error past a limit.
    void count_tar_bytes(size_t n);
    // Keeps the bytes just handed to the tar reader, dropping those it has
    // consumed.
    void keep_window(const char* data, size_t n);
    // Refuses an entry whose header blocks [start, end) name it ambiguously.
    void check_headers(int64_t start, int64_t end, const std::string& path) const;
    // Notes where the end-of-archive marker is and whether it is complete.
    void note_end_marker();
    // Refuses non-zero bytes at stream offset `offset` after a lone zero block.
    void check_after_lone_block(const char* data, size_t n, uint64_t offset) const;

    ByteSource& src_;
    ApplyLimits limits_;
    struct archive* outer_ = nullptr;
    struct archive* inner_ = nullptr;
    bool outer_has_data_ = false;
    bool outer_done_ = false;
    std::vector<char> src_buf_;
    std::vector<char> tar_buf_;
    Sha256 hash_;
    uint64_t tar_bytes_ = 0;
    uint64_t src_bytes_ = 0;  // compressed bytes read from src_
    bool src_eof_ = false;    // src_ has reported its end
    std::string window_;      // tar bytes from window_start_ on, not yet consumed
    uint64_t window_start_ = 0;
    bool reading_header_ = false;  // inside archive_read_next_header
    uint64_t data_start_ = 0;      // where the last entry's data began
    uint64_t end_start_ = 0;       // where the end-of-archive marker began
    bool lone_end_ = false;        // the marker was one zero block (or none)
    std::exception_ptr pending_;
    std::string last_path_;
};

}  // namespace strata::codec
