// libFuzzer target for the layer tar reader, strata::apply_layer_tar.
//
// Each input is applied as a layer tar (plain, gzip, zstd, ... as the codec
// detects) to a fresh layer directory. Built twice: fuzz_layer_tar applies
// with no lower layers, fuzz_layer_tar_lower (STRATA_FUZZ_LOWER) on top of
// one small lower layer made once at start-up, which holds files, a hard-link
// pair, symlinks (one to a directory, two that point at the canary from
// outside the layer), a whiteout, an opaque directory and a fifo.
//
// Layout under the process's temporary root:
//
//     <root>/lower/            the lower layer (lower mode only)
//     <root>/case/layer/       the layer the input is applied to
//     <root>/case/again/       where the layer's export is applied again
//     <root>/case/canary/file  a file nothing may touch
//
// `case` is made afresh for every input and removed after it.
//
// Mutations go through strata::fuzz::mutate_tar, which repairs the header
// checksums of uncompressed tars so mutated headers reach the codec.
//
// Findings (the process aborts, libFuzzer keeps the input):
//   - any exception other than strata::Error, any crash or sanitizer report;
//   - anything outside <root>/case/layer created, removed or changed,
//     data or metadata (the canary, the lower layer, the directories around
//     them), even when apply_layer_tar threw;
//   - a FileRecord reported for an entry whose path is absolute or climbs
//     with "..";
//   - after a successful apply: write_layer_tar, layer_changes or
//     layer_content_size throwing on the layer the codec itself just wrote,
//     or the exported tar failing to apply again.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/layer_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace fs = std::filesystem;
using strata::fuzz::finding;

namespace {

#ifdef STRATA_FUZZ_LOWER
constexpr bool kWithLower = true;
#else
constexpr bool kWithLower = false;
#endif

// Small enough that one input cannot fill the disk or take seconds.
constexpr strata::ApplyLimits kLimits{.max_entries = 20'000, .max_bytes = uint64_t{64} << 20};

// Above this many bytes of file content the exported tar is not re-applied
// (sparse entries can claim terabytes that export would read as zeros).
constexpr uint64_t kRoundTripLimit = uint64_t{8} << 20;

struct Fixture {
    fs::path root;
    std::vector<fs::path> lower;  // empty without STRATA_FUZZ_LOWER
};

void check_sys(int r, const std::string& what) {
    if (r != 0) strata::throw_errno("fuzz: lower layer: " + what);
}

void make_lower(const fs::path& root) {
    fs::path l = root / "lower";
    fs::create_directories(l / "etc");
    fs::create_directories(l / "bin");
    fs::create_directories(l / "usr/share/doc");
    fs::create_directories(l / "opq/sub");
    strata::fuzz::write_file(l / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    strata::fuzz::write_file(l / "etc/shadow", "root:*:19000:0:99999:7:::\n");
    check_sys(::chown((l / "etc/shadow").c_str(), 0, 42), "chown etc/shadow");
    check_sys(::chmod((l / "etc/shadow").c_str(), 0640), "chmod etc/shadow");
    check_sys(::lsetxattr((l / "etc/passwd").c_str(), "user.fuzz", "1", 1, 0), "xattr");
    strata::fuzz::write_file(l / "bin/tool", "#!/bin/sh\necho tool\n");
    check_sys(::chmod((l / "bin/tool").c_str(), 04755), "chmod bin/tool");
    check_sys(::link((l / "bin/tool").c_str(), (l / "bin/tool2").c_str()), "link bin/tool2");
    fs::create_symlink("tool", l / "bin/sh");
    fs::create_symlink("etc", l / "dirlink");
    strata::fuzz::write_file(l / "usr/share/doc/readme.txt", "lower layer readme\n");
    strata::fuzz::write_file(l / "opq/sub/inner.txt", "inside an opaque directory\n");
    check_sys(::lsetxattr((l / "opq").c_str(), "trusted.overlay.opaque", "y", 1, 0), "opaque");
    check_sys(::mknod((l / "gone").c_str(), S_IFCHR | 0600, makedev(0, 0)), "whiteout gone");
    check_sys(::mkfifo((l / "pipe").c_str(), 0644), "fifo pipe");

    // Links from the lower layer to the canary: a codec that followed
    // symlinks in lower layers would write there.
    fs::create_symlink("../case/canary", l / "esc");
    fs::create_symlink(root / "case/canary", l / "abs");
    fs::create_symlink("../case/canary/file", l / "etc/escfile");
}

Fixture make_fixture() {
    Fixture f;
    f.root =
        strata::fuzz::make_temp_root(kWithLower ? "strata-fuzz-layer-lower" : "strata-fuzz-layer");
    if (kWithLower) {
        make_lower(f.root);
        f.lower.push_back(f.root / "lower");
    }
    return f;
}

Fixture& fixture() {
    static Fixture f = make_fixture();
    return f;
}

bool climbs_or_absolute(const std::string& path) {
    if (!path.empty() && path[0] == '/') return true;
    size_t start = 0;
    for (;;) {
        size_t slash = path.find('/', start);
        if (path.compare(start, slash == std::string::npos ? std::string::npos : slash - start,
                         "..") == 0) {
            return true;
        }
        if (slash == std::string::npos) return false;
        start = slash + 1;
    }
}

// Exports the freshly applied layer, inspects it, and applies the export to
// a second layer directory; the codec's own output must always be readable.
void round_trip(const fs::path& layer, const fs::path& again, const std::vector<fs::path>& lower) {
    std::string step = "write_layer_tar";
    try {
        strata::StringSink sink;
        strata::write_layer_tar(layer, sink);
        step = "layer_changes";
        strata::layer_changes(layer, lower);
        step = "layer_content_size";
        strata::layer_content_size(layer);
        step = "apply_layer_tar of the exported tar";
        strata::fuzz::MemorySource src(reinterpret_cast<const uint8_t*>(sink.data.data()),
                                       sink.data.size());
        strata::apply_layer_tar(src, again, lower, nullptr, kLimits);
    } catch (const strata::Error& e) {
        finding(step + " failed on a layer apply_layer_tar wrote: " + e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    fixture();
    return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int /*seed*/) {
    return strata::fuzz::mutate_tar(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Fixture& f = fixture();
    fs::path case_dir = f.root / "case";
    fs::path layer = case_dir / "layer";
    fs::path again = case_dir / "again";
    fs::create_directories(layer);
    fs::create_directories(again);
    fs::create_directories(case_dir / "canary");
    strata::fuzz::write_file(case_dir / "canary/file", "canary\n");
    const std::set<std::string> skip = {"case/layer", "case/again"};
    std::string before = strata::fuzz::tree_snapshot(f.root, skip);

    bool applied = false;
    uint64_t claimed_bytes = 0;
    try {
        strata::fuzz::MemorySource src(data, size);
        auto on_entry = [&](const strata::FileRecord& rec) {
            if (climbs_or_absolute(rec.path)) finding("entry recorded as '" + rec.path + "'");
            claimed_bytes += rec.size;
        };
        strata::ApplyResult r = strata::apply_layer_tar(src, layer, f.lower, on_entry, kLimits);
        applied = true;
        strata::fuzz::verbose("applied " + std::to_string(r.entries) + " entries");
    } catch (const strata::Error& e) {
        // Refusing bad input is the expected outcome for most inputs.
        strata::fuzz::verbose(std::string("refused: ") + e.what());
    } catch (const std::exception& e) {
        finding(std::string("apply_layer_tar threw a non-strata exception: ") + e.what());
    }

    std::string after = strata::fuzz::tree_snapshot(f.root, skip);
    if (after != before) {
        finding("apply_layer_tar changed files outside the layer directory:" +
                strata::fuzz::snapshot_diff(before, after));
    }
    if (applied && claimed_bytes <= kRoundTripLimit) {
        round_trip(layer, again, f.lower);
        after = strata::fuzz::tree_snapshot(f.root, skip);
        if (after != before) {
            finding("exporting or re-applying changed files outside the layer directories:" +
                    strata::fuzz::snapshot_diff(before, after));
        }
    }
    fs::remove_all(case_dir);
    return 0;
}
