// SHA-256 digests in the OCI form "sha256:<64 lowercase hex>".
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace strata {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, size_t n);

    // Returns "sha256:<hex>". The object must not be used afterwards.
    std::string final_digest();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Digest of a whole string.
std::string sha256_digest(const std::string& data);

// The hex part of "sha256:<hex>", or throws Error if `digest` is not a
// well-formed sha256 digest.
std::string digest_hex(const std::string& digest);

}  // namespace strata
