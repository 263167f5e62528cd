// Pull and push byte streams: the seam between image archives, the layer tar
// codec and the command line.
//
// A ByteSource hands out bytes until it returns 0 (the end); a ByteSink takes
// them. Both report failure by throwing strata::Error. Streams are not
// thread-safe; each is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/digest.h"

namespace strata {

class ByteSource {
public:
    virtual ~ByteSource() = default;

    // Reads up to `n` bytes into `buf`. Returns the count read, 0 only at the
    // end of the stream. Throws Error on a read failure.
    virtual size_t read(void* buf, size_t n) = 0;
};

class ByteSink {
public:
    virtual ~ByteSink() = default;

    // Writes all `n` bytes or throws Error.
    virtual void write(const void* buf, size_t n) = 0;
};

// Reads from a file descriptor it does not own (for example stdin).
class FdSource : public ByteSource {
public:
    FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
    size_t read(void* buf, size_t n) override;

private:
    int fd_;
    std::string name_;
};

// Writes to a file descriptor it does not own (for example stdout).
class FdSink : public ByteSink {
public:
    FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
    void write(const void* buf, size_t n) override;

private:
    int fd_;
    std::string name_;
};

// Passes bytes through from another source while hashing and counting them.
class HashingSource : public ByteSource {
public:
    explicit HashingSource(ByteSource& inner) : inner_(inner) {}
    HashingSource(const HashingSource&) = delete;
    HashingSource& operator=(const HashingSource&) = delete;

    size_t read(void* buf, size_t n) override;

    // Reads and hashes whatever is left of the inner source.
    void drain();

    uint64_t bytes() const { return bytes_; }

    // "sha256:<hex>" of everything read so far; call once, at the end.
    std::string digest() { return hash_.final_digest(); }

private:
    ByteSource& inner_;
    Sha256 hash_;
    uint64_t bytes_ = 0;
};

// Collects everything written to it in memory; for small documents only.
class StringSink : public ByteSink {
public:
    void write(const void* buf, size_t n) override {
        data.append(static_cast<const char*>(buf), n);
    }
    std::string data;
};

}  // namespace strata
