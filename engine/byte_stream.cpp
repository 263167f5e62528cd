#include "engine/byte_stream.h"

#include <unistd.h>

#include <cerrno>

#include "engine/error.h"

namespace strata {

size_t FdSource::read(void* buf, size_t n) {
    for (;;) {
        ssize_t got = ::read(fd_, buf, n);
        if (got >= 0) return static_cast<size_t>(got);
        if (errno != EINTR) throw_errno("read " + name_);
    }
}

void FdSink::write(const void* buf, size_t n) {
    const char* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t put = ::write(fd_, p, n);
        if (put < 0) {
            if (errno == EINTR) continue;
            throw_errno("write " + name_);
        }
        p += put;
        n -= static_cast<size_t>(put);
    }
}

size_t HashingSource::read(void* buf, size_t n) {
    size_t got = inner_.read(buf, n);
    hash_.update(buf, got);
    bytes_ += got;
    return got;
}

void HashingSource::drain() {
    char buf[64 * 1024];
    while (read(buf, sizeof buf) > 0) {
    }
}

}  // namespace strata
