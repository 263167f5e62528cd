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
};

class TarInput {
  public:
    // Reads from `src`; more than `max_bytes` of uncompressed tar is an
    // Error. Throws Error if the stream cannot be opened.
    TarInput(ByteSource& src, uint64_t max_bytes);
    ~TarInput();
    TarInput(const TarInput&) = delete;
    TarInput& operator=(const TarInput&) = delete;

    // Reads the next entry header into `entry`. Returns false at the end of
    // the archive. Throws Error naming the previous entry when the archive
    // is malformed or the source fails.
    bool next(TarEntry& entry);

    // Reads the next run of the current entry's content. Returns false when
    // the entry has no more; `offset` is where the run goes in the file
    // (runs skip the holes of sparse entries). Throws Error on failure.
    bool read_block(const void** buf, size_t* len, int64_t* offset);

    // Reads the rest of the decompressed stream and of the source. Throws
    // Error on failure.
    void finish();

    // "sha256:<hex>" of the uncompressed tar; call once, after finish().
    std::string digest();

    uint64_t tar_bytes() const { return tar_bytes_; }

  private:
    static ssize_t outer_read(struct archive* a, void* self, const void** buf);
    static ssize_t inner_read(struct archive* a, void* self, const void** buf);
    [[noreturn]] void fail(struct archive* a, const std::string& context);

    ByteSource& src_;
    uint64_t max_bytes_;
    struct archive* outer_ = nullptr;
    struct archive* inner_ = nullptr;
    bool outer_has_data_ = false;
    bool outer_done_ = false;
    std::vector<char> src_buf_;
    std::vector<char> tar_buf_;
    Sha256 hash_;
    uint64_t tar_bytes_ = 0;
    std::exception_ptr pending_;
    std::string last_path_;
};

}  // namespace strata::codec
