// The layer tar codec: OCI layer tars in and out of a posix layer directory.
//
// Reading (apply_layer_tar): libarchive reads the stream, plain, gzip or zstd
// (or the other compressions libarchive decodes in-process) detected by
// content; engine/tar_input.h has the pipeline. Entries follow the OCI
// image-spec layer rules:
// ".wh.NAME" deletes NAME from lower layers, ".wh..wh..opq" makes its
// directory opaque (it hides lower layers only, wherever it appears in the
// tar), a later entry for the same path replaces an earlier one, hard links,
// symlinks, devices, fifos, sparse files, long names, xattrs and
// setuid/setgid bits are kept. Every name, link target and whiteout is
// resolved inside the layer directory without following symlinks; nothing
// an archive says can touch a file outside it. Directories an entry needs but
// the tar does not carry are created with the metadata the lower layers give
// them (0755 root where they have none); a symlink or other non-directory of
// this layer where an entry needs a directory is an Error, a whiteout there
// becomes an opaque directory. A whiteout or opaque marker whose directory the merged tree does not
// have changes nothing; other ".wh..wh." names (aufs bookkeeping) are
// skipped. An opaque marker at the layer root, where overlayfs ignores the
// opaque mark, whites out each lower root entry instead. The result is in
// the form overlay_format.h describes.
//
// Hostile input (docs/security.md has every case and its outcome): a ".."
// component, a component over 255 bytes or a name over 4095 bytes is
// refused; an entry named twice (PAX path and GNU long name), a sparse map
// that disagrees with its entry, or data after a lone zero block is
// refused; trusted.overlay.*, user.overlay.* and security.* xattrs other
// than security.capability are dropped with a warning; ApplyLimits bound
// the entries, the uncompressed bytes and the expansion ratio.
//
// Writing (write_layer_tar): a layer directory's own changes as an
// uncompressed PAX tar any OCI engine can apply, whiteouts and opaque
// directories translated back to ".wh." entries, hard links kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/byte_stream.h"
#include "storage/file_record.h"

namespace strata {

// FileRecord (storage/file_record.h): one tar entry as applied, for the file index.
// The codec fills it as follows: `path` is the entry's name normalised ("." for
// the layer root); whiteout ('w') and opaque-marker ('o') records keep the
// marker's own name ("a/.wh.b", "a/.wh..wh..opq"); a hard link's
// `link_target` is the normalised target; `xattrs_json` leaves out the
// overlay form's own trusted.overlay.* names.

// What one layer tar may hold. The command line sets them with
// --max-entries, --max-bytes and --max-ratio.
struct ApplyLimits {
    uint64_t max_entries = 10'000'000;
    uint64_t max_bytes = uint64_t{1} << 40;  // uncompressed tar bytes; also bounds a sparse size
    // Uncompressed tar bytes per compressed byte read, checked once 64 MiB
    // of tar has been read; 0 turns the check off.
    uint64_t max_ratio = 1000;
};

struct ApplyResult {
    std::string diff_digest;     // "sha256:..." of the uncompressed tar stream, to its end
    uint64_t tar_bytes = 0;      // uncompressed tar bytes
    uint64_t content_bytes = 0;  // bytes of regular-file content written
    uint64_t entries = 0;
};

// Applies the layer tar read from `src` to the (existing, normally empty)
// directory `layer_dir`. `lower` holds the parent chain's layer directories,
// nearest first. `on_entry` is called once per applied tar entry, in order.
// Reads `src` to its end, so the digest covers trailing padding. Data is
// written but not synced; the caller makes it durable.
// Throws Error naming the entry on malformed or hostile input (for example
// "layer tar entry 'a/../b': path escapes the layer"), and Error "layer tar
// has more than N entries (limit N)", "... more than N uncompressed tar
// bytes (limit N)" or "... expands more than N times its compressed size
// (limit N)" past `limits`; the layer directory is then in an undefined
// state and the caller destroys it. Exceptions from `on_entry` pass through
// unchanged. docs/security.md lists the outcome of each kind of hostile
// input.
ApplyResult apply_layer_tar(ByteSource& src, const std::filesystem::path& layer_dir,
                            const std::vector<std::filesystem::path>& lower,
                            const std::function<void(const FileRecord&)>& on_entry,
                            const ApplyLimits& limits = {});

// Writes the changes held in `layer_dir` as an uncompressed tar to `out`.
// Output is deterministic: entries sorted by path, parents before children
// (names compared bytewise within each directory); the layer root itself
// and sockets are not written; times are whole seconds. Throws Error naming
// the path on I/O failure; exceptions from `out` pass through as Error.
void write_layer_tar(const std::filesystem::path& layer_dir, ByteSink& out);

struct Change {
    std::string path;  // "/a/b"
    enum class Kind { Add, Modify, Delete } kind;
};
// "add", "modify" or "delete".
const char* change_kind_name(Change::Kind kind);

// What `layer_dir` changes relative to its lower chain (nearest first),
// sorted by path: a whiteout is a Delete; a path the lower chain has is a
// Modify, except a directory both have with equal mode, owner and xattrs
// that is not opaque (only a parent of changes: not reported); anything
// else is an Add; an opaque directory also deletes every lower child it
// does not hold. Throws Error on I/O failure.
std::vector<Change> layer_changes(const std::filesystem::path& layer_dir,
                                  const std::vector<std::filesystem::path>& lower);

// Bytes of regular-file content held in `layer_dir` (hard links counted once).
// Throws Error on I/O failure.
uint64_t layer_content_size(const std::filesystem::path& layer_dir);

}  // namespace strata
