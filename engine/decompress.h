// A ByteSource that decompresses another: gzip, zstd, xz, bzip2 or none,
// detected by content (libarchive's filters with its raw format).
#pragma once

#include <archive.h>

#include <string>

#include "engine/byte_stream.h"

namespace strata {

class DecompressingSource : public ByteSource {
public:
    // `name` is used in error messages ("layer blobs/sha256/ab..").
    DecompressingSource(ByteSource& inner, std::string name);
    ~DecompressingSource() override;
    DecompressingSource(const DecompressingSource&) = delete;
    DecompressingSource& operator=(const DecompressingSource&) = delete;

    size_t read(void* buf, size_t n) override;

private:
    static la_ssize_t on_read(struct archive*, void* self, const void** buf);

    ByteSource& inner_;
    std::string name_;
    struct archive* a_ = nullptr;
    bool started_ = false;
    bool empty_ = false;
    char in_buf_[64 * 1024];
};

}  // namespace strata
