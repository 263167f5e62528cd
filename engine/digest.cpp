#include "engine/digest.h"

#include <openssl/evp.h>

#include "engine/error.h"

namespace strata {

struct Sha256::Impl {
    EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
        throw Error("sha256: cannot initialise the digest");
    }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::update(const void* data, size_t n) {
    if (n != 0 && EVP_DigestUpdate(impl_->ctx, data, n) != 1) {
        throw Error("sha256: digest update failed");
    }
}

std::string Sha256::final_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(impl_->ctx, md, &len) != 1) {
        throw Error("sha256: digest finalisation failed");
    }
    static const char hex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 0xf]);
    }
    return out;
}

std::string sha256_digest(const std::string& data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.final_digest();
}

std::string digest_hex(const std::string& digest) {
    const std::string prefix = "sha256:";
    bool ok = digest.size() == prefix.size() + 64 && digest.compare(0, prefix.size(), prefix) == 0;
    for (size_t i = prefix.size(); ok && i < digest.size(); ++i) {
        char c = digest[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    if (!ok) {
        throw Error("malformed digest '" + digest + "' (expected sha256:<64 lowercase hex>)");
    }
    return digest.substr(prefix.size());
}

}  // namespace strata
