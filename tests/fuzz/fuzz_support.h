// Helpers shared by strata's libFuzzer targets: temporary directories, whole
// files, tree snapshots for "nothing else changed" checks, and reporting a
// finding.
//
// Invariants: a directory made by make_temp_root() is removed when the
// process exits normally (libFuzzer exits through exit() after -runs or
// -max_total_time); after a finding (abort) it is left behind for
// inspection. Nothing here follows a symlink it finds inside a tree.
//
// Fuzz code only; not part of the engine or the test suites.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include "engine/byte_stream.h"

namespace strata::fuzz {

// Prints "strata fuzz finding: <what>" to stderr and aborts, so libFuzzer
// records the input that led here as a crash artifact.
[[noreturn]] void finding(const std::string& what);

// Prints `what` to stderr when $STRATA_FUZZ_VERBOSE is set (for checking
// what a corpus reaches: `STRATA_FUZZ_VERBOSE=1 ./fuzz_x -runs=0 corpus/`).
void verbose(const std::string& what);

// Creates a new, empty directory "<$TMPDIR or /tmp>/<prefix>-XXXXXX" that is
// removed with everything below it when the process exits. Throws Error if
// it cannot be made.
std::filesystem::path make_temp_root(const std::string& prefix);

// Writes `data` to `path`, replacing any earlier file. Throws Error.
void write_file(const std::filesystem::path& path, const std::string& data);

// The whole content of `path`. Throws Error.
std::string read_file(const std::filesystem::path& path);

// Extracts the regular files and directories of the tar at `tar` into the
// existing directory `dest` (fixtures only: the archive is trusted, but
// names that climb out of `dest` are refused all the same). Throws Error.
void extract_tar(const std::filesystem::path& tar, const std::filesystem::path& dest);

// One line per entry of the tree at `root` (the root itself as "."),
// sorted: path, type, mode, owner, size, nlink, rdev, mtime and ctime in
// nanoseconds, the sha256 of a regular file's content, a symlink's target
// and every xattr. Any change to an entry's data or metadata, or any entry
// created or removed, changes the text (ctime catches even a hard link made
// to a file, or a change undone later). Entries whose relative path is in
// `opaque` appear by name and type only and are not descended into. Throws
// Error on a read failure.
std::string tree_snapshot(const std::filesystem::path& root,
                          const std::set<std::string>& opaque = {});

// The lines of `before` missing from `after` ("- ...") and the lines of
// `after` missing from `before` ("+ ..."), for a finding's message.
std::string snapshot_diff(const std::string& before, const std::string& after);

// Recomputes the header checksum of every ustar/GNU/PAX header block of the
// uncompressed tar in data[0, size), walking headers by their size fields.
// libarchive refuses a header whose checksum is wrong, so without this
// nearly every mutation of a header would end the parse there.
void fix_tar_checksums(uint8_t* data, size_t size);

// A libFuzzer custom mutation for tar inputs: libFuzzer's own mutation,
// then fix_tar_checksums(). For LLVMFuzzerCustomMutator.
size_t mutate_tar(uint8_t* data, size_t size, size_t max_size);

// A ByteSource over a buffer it does not own, handing out at most `chunk`
// bytes per read so short reads are exercised.
class MemorySource : public ByteSource {
public:
    MemorySource(const uint8_t* data, size_t size, size_t chunk = 4096)
        : data_(data), size_(size), chunk_(chunk) {}

    size_t read(void* buf, size_t n) override;

private:
    const uint8_t* data_;
    size_t size_;
    size_t chunk_;
    size_t pos_ = 0;
};

}  // namespace strata::fuzz
