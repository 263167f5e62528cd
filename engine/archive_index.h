// Named entries of an image archive: a tar file or a directory, read in place.
//
// An ArchiveIndex is what the image-archive parsers see: a flat set of file
// names ("manifest.json", "blobs/sha256/<hex>", "<id>/layer.tar"), each a
// regular file with a size, that can be read whole (small documents) or
// streamed (layer blobs). Names are normalised: no leading "./" or "/", no
// "." or empty components, ".." resolved lexically; a name that climbs above
// the archive root names nothing.
//
// Tar files are indexed in one pass over the headers. Symlink entries are
// resolved relative to their own directory (absolute targets from the archive
// root), hard links by the name they point at, at most kMaxLinkHops times, so
// a link loop is an error and not a hang; a later entry with the same name
// replaces an earlier one, as when tar extracts. An uncompressed tar is read
// with pread at each entry's data offset; a compressed one is scanned again
// from the start for every blob, and its small entries are kept in memory
// during the indexing pass so documents need no second scan.
//
// Directories are read through the file system; a name whose real path
// (after the OS follows symlinks) leaves the directory names nothing.
//
// Memory is bounded: documents are refused above a size limit, and streams
// hold one block buffer at most. An index is used by one thread at a time;
// the streams it hands out are independent of it and of each other.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/byte_stream.h"

namespace strata {

// Documents (manifests, indexes, configs) larger than this are refused.
inline constexpr uint64_t kDocumentLimit = uint64_t{16} << 20;

// Links followed at most while resolving one name.
inline constexpr int kMaxLinkHops = 40;

// The normal form of an entry name described above, or nullopt if it climbs
// above the root or is empty.
std::optional<std::string> normalize_entry_name(const std::string& name);

class ArchiveIndex {
public:
    virtual ~ArchiveIndex() = default;

    // Opens a tar file or a directory at `path`. Throws Error naming `path`
    // if it cannot be read or a file is not a tar archive.
    static std::unique_ptr<ArchiveIndex> open(const std::filesystem::path& path);

    struct Entry {
        std::string name;  // the regular file `name` resolves to, normalised
        uint64_t size = 0;
    };

    // The regular file `name` names after links are followed, or nullopt if
    // there is none (absent, a directory, a device, outside the root).
    // Throws Error if resolving it runs into a link loop.
    virtual std::optional<Entry> find(const std::string& name) const = 0;

    // Reads the whole of regular file `name`. Throws Error if it is absent or
    // larger than `limit` bytes, saying which ("<doc>: ..." follows
    // `where()`), or on a read failure.
    virtual std::string read_document(const std::string& name,
                                      uint64_t limit = kDocumentLimit) const = 0;

    // Streams the bytes of regular file `name`. Throws Error if it is absent.
    // The stream throws Error on a read failure or if the file is shorter
    // than the index said.
    virtual std::unique_ptr<ByteSource> open_stream(const std::string& name) const = 0;

    // Normalised names of every regular file and link, in archive order (for
    // a directory: in no particular order). Throws Error on a listing failure.
    virtual std::vector<std::string> names() const = 0;

    // True for a directory, false for a tar file.
    virtual bool is_directory() const = 0;

    // "image archive <path>", the start of every message about this archive.
    virtual const std::string& where() const = 0;
};

// The two implementations behind ArchiveIndex::open, for tests that need one
// in particular. `allow_pread` false makes a tar index rescan the archive for
// every stream even when it is uncompressed. Both throw as open() does.
std::unique_ptr<ArchiveIndex> open_tar_index(const std::filesystem::path& path,
                                             bool allow_pread = true);
std::unique_ptr<ArchiveIndex> open_dir_index(const std::filesystem::path& path);

}  // namespace strata
