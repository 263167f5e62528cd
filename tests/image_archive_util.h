// Helpers of the image-archive suites: the fixtures folder, temporary
// directories, shell commands, and digests computed outside the code under
// test (sha256sum, zcat, zstdcat, libarchive's raw reader) to compare with.
//
// Every helper throws std::runtime_error when a command or a read fails, so
// a broken environment fails the test instead of passing it vacuously.
#pragma once

#include <archive.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "engine/byte_stream.h"
#include "engine/digest.h"

namespace strata::test {

namespace fs = std::filesystem;

// The images folder of the shared fixtures: $STRATA_SHARED/images, else the
// one the build points at.
inline fs::path shared_images() {
    const char* env = std::getenv("STRATA_SHARED");
    fs::path shared =
        env != nullptr && *env != '\0' ? fs::path(env) : fs::path(STRATA_SHARED_DEFAULT);
    return shared / "images";
}

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/strata-image-test-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out.push_back(c);
        }
    }
    return out + "'";
}

// Runs `command` under bash with pipefail and returns its standard output.
inline std::string run(const std::string& command) {
    std::string wrapped = "bash -o pipefail -c " + shell_quote(command);
    FILE* pipe = ::popen(wrapped.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    int status = ::pclose(pipe);
    if (status != 0)
        throw std::runtime_error("command failed (" + std::to_string(status) + "): " + command);
    return out;
}

// "sha256:<hex>" of what `command` prints, by sha256sum.
inline std::string sha256_of_output(const std::string& command) {
    std::string out = run(command + " | sha256sum");
    if (out.size() < 64) throw std::runtime_error("sha256sum printed nothing: " + command);
    return "sha256:" + out.substr(0, 64);
}

struct OutsideDigests {
    std::string raw;           // of the blob's bytes
    std::string uncompressed;  // of the blob after zcat or zstdcat (chosen by magic), else raw
    uint64_t size = 0;
};

// Digests of the blob that `extract` (a shell command) prints, computed with
// coreutils, gzip and zstd; `scratch` is a directory for the blob's copy.
inline OutsideDigests outside_digests(const std::string& extract, const fs::path& scratch) {
    std::string blob = shell_quote((scratch / "outside-blob").string());
    run(extract + " > " + blob);
    OutsideDigests d;
    d.raw = sha256_of_output("cat " + blob);
    d.size = std::stoull(run("stat -c %s " + blob));
    std::string magic = run("head -c 4 " + blob + " | od -An -tx1 | tr -d ' \\n'");
    std::string tool = magic.rfind("1f8b", 0) == 0 ? "zcat"
                       : magic == "28b52ffd"       ? "zstdcat"
                                                   : "cat";
    d.uncompressed = sha256_of_output(tool + " " + blob);
    run("rm -f " + blob);
    return d;
}

// Digest of everything `src` yields.
inline std::string stream_digest(ByteSource& src) {
    HashingSource h(src);
    h.drain();
    return h.digest();
}

// Digest of what `src` yields after libarchive's filters decompress it.
inline std::string uncompressed_digest(ByteSource& src) {
    struct Feed {
        ByteSource* src;
        char buf[64 * 1024];
    } feed{&src, {}};
    auto on_read = [](struct archive*, void* p, const void** out) -> la_ssize_t {
        auto* f = static_cast<Feed*>(p);
        *out = f->buf;
        try {
            return static_cast<la_ssize_t>(f->src->read(f->buf, sizeof f->buf));
        } catch (...) {
            return -1;
        }
    };
    struct archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    struct archive_entry* entry = nullptr;
    if (archive_read_open(a, &feed, nullptr, on_read, nullptr) != ARCHIVE_OK ||
        archive_read_next_header(a, &entry) != ARCHIVE_OK) {
        std::string msg = archive_error_string(a) != nullptr ? archive_error_string(a) : "?";
        archive_read_free(a);
        throw std::runtime_error("libarchive raw reader: " + msg);
    }
    Sha256 hash;
    char buf[64 * 1024];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) hash.update(buf, size_t(n));
    archive_read_free(a);
    if (n < 0) throw std::runtime_error("libarchive raw reader: read failed");
    return hash.final_digest();
}

// The message of the exception `fn` throws, or "(nothing thrown)".
template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(nothing thrown)";
}

}  // namespace strata::test
