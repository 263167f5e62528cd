// Shared pieces of the hostile-input suites (tests/test_hostile_*.cpp).
//
// Every hostile case is checked three ways, through the real `strata`
// binary:
//   1. a refused archive leaves the store as it was: `strata ls --json`, the
//      listing of the store's layers/ directory and the `diff` digest of
//      every other layer (computed in-process by write_layer_tar, the
//      function `strata diff` runs) are compared before and after;
//   2. nothing outside the layer being written is created, changed or
//      deleted: a canary directory beside the store (files, a directory, a
//      symlink, a setuid file) and the other layers' directories are
//      scanned with tree_compare.h before and after, and so is the listing
//      of the test's own temporary directory;
//   3. the process stays within a memory limit: strata runs with
//      RLIMIT_AS = kMemoryLimit set in the child before exec, and its peak
//      RSS is reported. AddressSanitizer reserves terabytes of address
//      space, so sanitizer builds run without the limit (kSanitized).
//
// HostileStore makes the store and the canary, and a base layer "base"
// whose symlinks point into the canary (`lib` -> the canary directory,
// `victim` -> the canary's file, `up` -> "../../../.."), so archives can try
// to write through links a lower layer made.
//
// raw:: builds tar blocks byte by byte, for headers libarchive's writer
// will not produce (conflicting sizes, bad lengths, lone zero blocks).
//
// Test code only; runs as root. Functions throw std::runtime_error on
// setup failures and report check failures through Boost.Test.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/fixture.h"
#include "tests/support/tree_compare.h"

#if defined(__SANITIZE_ADDRESS__)
#define STRATA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_TEST_ASAN 1
#endif
#endif

namespace strata::test {

#ifdef STRATA_TEST_ASAN
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// The address-space limit strata runs under (when not sanitized).
inline constexpr uint64_t kMemoryLimit = uint64_t{512} << 20;

namespace raw {

// One ustar header block. `size_field`, when not empty, is written to the
// 12-byte size field as it is (for base-256 or malformed sizes).
struct Header {
    std::string name = {};
    char type = '0';
    uint32_t mode = 0644;
    uint64_t size = 0;
    std::string size_field = {};
    std::string link = {};
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t dev_major = 0;
    uint32_t dev_minor = 0;
    int64_t mtime = 1'700'000'000;
};

// The 512-byte header block for `h`, checksum included.
std::string header(const Header& h);
// `data` padded with zeros to a multiple of 512 bytes.
std::string body(const std::string& data);
// A regular-file entry: header and padded content.
std::string file(const std::string& name, const std::string& data, uint32_t mode = 0644);
// A PAX extended header ('x', or 'g' for global) with `records` in order.
std::string pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x');
// A GNU long-name ('L') or long-link ('K') record for the next entry.
std::string gnu_long(const std::string& name, char type = 'L');
// The end-of-archive marker: two zero blocks.
std::string end();

}  // namespace raw

// What one strata run did.
struct Outcome {
    int exit_code = -1;
    std::string out;
    std::string err;
    long max_rss_kb = 0;  // peak resident set of the strata process
};

// A stream fed to strata's stdin through a pipe, never held in memory:
// `prefix`, then `zeros` zero bytes, then `suffix`.
struct Stream {
    std::string prefix = {};
    uint64_t zeros = 0;
    std::string suffix = {};
};

// Runs the strata binary with `args` and the stream on stdin, under
// RLIMIT_AS = kMemoryLimit unless kSanitized. `env` adds NAME=VALUE pairs.
// The child's peak RSS starts from the caller's RSS at fork (the kernel
// counts the copied pages), so callers free large buffers first.
Outcome run_limited(const std::vector<std::string>& args, const Stream& input,
                    const std::vector<std::string>& env = {});

// What the checks compare.
struct StoreState {
    std::string ls_json;                       // `strata ls --json`
    std::vector<std::string> layer_dirs;       // names in <root>/layers
    std::map<std::string, std::string> diffs;  // layer id -> sha256 of `strata diff`
    std::map<std::string, Manifest> trees;     // canary and layer directories by name
    std::vector<std::string> temp_listing;     // names in the test's temporary directory
};

class HostileStore {
public:
    // A fresh store with the canary and the base layer.
    HostileStore();
    HostileStore(const HostileStore&) = delete;
    HostileStore& operator=(const HostileStore&) = delete;

    const std::filesystem::path& dir() const { return tmp_.path(); }
    std::filesystem::path root() const { return tmp_ / "store"; }
    std::filesystem::path canary() const { return tmp_ / "canary"; }

    // strata --root <root> args..., stdin from `input` (bytes, may be empty).
    Outcome run(const std::vector<std::string>& args, const std::string& input = "",
                const std::vector<std::string>& global_args = {});
    // Streams `input` to `strata apply-diff id [--parent base]`.
    Outcome apply(const std::string& id, const Stream& input, bool on_base = true,
                  const std::vector<std::string>& global_args = {});
    Outcome apply(const std::string& id, const std::string& tar, bool on_base = true,
                  const std::vector<std::string>& global_args = {});

    // The layer directory of the ready layer `id` (from `show --json`).
    std::filesystem::path layer_dir(const std::string& id);
    // Ids of the ready layers.
    std::vector<std::string> layer_ids();
    StoreState state();

private:
    static std::vector<std::string> ids_in(const std::string& ls_json);

    TempDir tmp_;
    std::map<std::string, std::string> native_ids_;  // layer id -> native id
};

// How an expected error message is compared with the error line.
enum class Match { Exact, Contains };

// Checks that `tar` applied as layer `id` (on base unless !on_base) is
// refused with exactly one error line, "strata: error: apply-diff layer
// <id>: <message>" (or one containing `message`), and that the store, the
// canary and the other layers are unchanged.
void expect_refused(HostileStore& s, const std::string& id, const std::string& tar,
                    const std::string& message, bool on_base = true);
void expect_refused(HostileStore& s, const std::string& id, const Stream& input,
                    const std::string& message, bool on_base = true, Match match = Match::Exact,
                    const std::vector<std::string>& global_args = {});

// Checks that `tar` applies as layer `id` and that the canary and every
// other layer are unchanged; returns the new layer's directory.
std::filesystem::path expect_applied(HostileStore& s, const std::string& id, const std::string& tar,
                                     bool on_base = true);
std::filesystem::path expect_applied(HostileStore& s, const std::string& id, const Stream& input,
                                     bool on_base = true,
                                     const std::vector<std::string>& global_args = {});

// Compares two states: everything equal (`added` empty), or everything but
// the new layer `added` (its row, its directory, its diff).
void expect_same(const StoreState& before, const StoreState& after, const std::string& added = "");

// Helpers for assertions.
std::string sha256_hex(const std::string& data);
std::string read_bytes(const std::filesystem::path& p);

}  // namespace strata::test
