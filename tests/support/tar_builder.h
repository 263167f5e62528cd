// Crafting tar archives in memory for tests, with libarchive's writer.
//
// TarBuilder appends entries in the order called and names them exactly as
// given (no normalisation), so hostile names ("../x", "/abs", "a//b") can be
// written too:
//
//     std::string tar = TarBuilder()
//         .dir("etc")
//         .file("etc/hosts", "127.0.0.1 localhost\n", {.mode = 0644, .uid = 0, .gid = 4})
//         .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
//         .hardlink("etc/hosts.bak", "etc/hosts")
//         .whiteout("etc/motd")        // writes "etc/.wh.motd"
//         .opaque("var")               // writes "var/.wh..wh..opq"
//         .finish();
//     std::string gz = compress(tar, Compression::Gzip);
//
// Formats: Pax (default; xattrs, sparse files, long and UTF-8 names), Gnu
// (long names through GNU long-name records; no xattrs, no sparse) and Ustar.
// Names that are valid UTF-8 are stored as UTF-8 in PAX records.
//
// Every call throws strata::Error naming the entry when libarchive refuses
// it. Test code only.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/byte_stream.h"

struct archive;
struct archive_entry;

namespace strata::test {

// Metadata of one entry. `mode` kDefaultMode means the type's usual mode:
// 0644 files, 0755 directories, 0777 symlinks, 0644 devices and fifos.
struct TarMeta {
    static constexpr uint32_t kDefaultMode = 0xffffffff;
    uint32_t mode = kDefaultMode;
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t mtime = 1'700'000'000;
    std::vector<std::pair<std::string, std::string>> xattrs = {};  // name, raw value
};

class TarBuilder {
  public:
    enum class Format { Pax, Gnu, Ustar };

    explicit TarBuilder(Format format = Format::Pax);
    ~TarBuilder();
    TarBuilder(const TarBuilder&) = delete;
    TarBuilder& operator=(const TarBuilder&) = delete;

    TarBuilder& file(const std::string& path, const std::string& content, TarMeta meta = {});
    // A sparse file of `size` bytes holding only `runs` (offset, data), in
    // increasing offset order; the rest are holes. Pax only.
    TarBuilder& sparse_file(const std::string& path, uint64_t size,
                            const std::vector<std::pair<uint64_t, std::string>>& runs,
                            TarMeta meta = {});
    TarBuilder& dir(const std::string& path, TarMeta meta = {});
    TarBuilder& symlink(const std::string& path, const std::string& target, TarMeta meta = {});
    TarBuilder& hardlink(const std::string& path, const std::string& target, TarMeta meta = {});
    // `type`: 'c' (character) or 'b' (block).
    TarBuilder& device(const std::string& path, char type, uint32_t major, uint32_t minor,
                       TarMeta meta = {});
    TarBuilder& fifo(const std::string& path, TarMeta meta = {});
    // An OCI whiteout for `path`: an empty file "<dir>/.wh.<name>".
    TarBuilder& whiteout(const std::string& path);
    // An OCI opaque marker "<dir>/.wh..wh..opq" ("" for the root).
    TarBuilder& opaque(const std::string& dir);

    // Ends the archive (end-of-archive marker, padded as libarchive pads)
    // and returns its bytes. The builder cannot be used afterwards.
    std::string finish();

  private:
    // A new entry (owned by the caller until commit) with `meta` applied.
    struct archive_entry* make(const std::string& path, unsigned type, const TarMeta& meta,
                               uint32_t default_mode);
    // Writes the header of `e`, then `data`, and frees `e`.
    void commit(struct archive_entry* e, const std::string& path, const std::string& data);

    struct archive* a_ = nullptr;
    std::string out_;
    bool finished_ = false;
};

enum class Compression { None, Gzip, Zstd };

// `data` compressed with libarchive's filter (None returns it unchanged).
std::string compress(const std::string& data, Compression c);

// A ByteSource over a string, handing out at most `chunk` bytes per read
// (small chunks exercise short reads).
class StringByteSource : public ByteSource {
  public:
    explicit StringByteSource(std::string data, size_t chunk = 64 * 1024)
        : data_(std::move(data)), chunk_(chunk) {}
    size_t read(void* buf, size_t n) override;
    size_t consumed() const { return pos_; }

  private:
    std::string data_;
    size_t chunk_;
    size_t pos_ = 0;
};

}  // namespace strata::test
