// The checks TarInput makes on the tar bytes themselves, where libarchive
// gives no answer (see tar_input.h): ambiguous entry names and the end of
// the archive.
//
// Invariant: window_ starts at or before the first header block of the
// entry being read and ends where the bytes handed to the tar reader end,
// so check_headers() always sees every header block of the entry just read;
// it never holds an entry's data beyond what the reader itself buffers.
#include <archive.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>

#include "engine/error.h"
#include "engine/tar_input.h"

namespace strata::codec {

namespace {

constexpr size_t kBlock = 512;

// The most header bytes (extended and long-name records) one entry may
// have. libarchive takes each record up to 1 MiB but any number of them;
// they are kept here until the entry's own header is read.
constexpr uint64_t kMaxHeaderBytes = uint64_t{16} << 20;

// A numeric header field as tar readers take it: octal digits after
// optional spaces, or base-256 when the first byte has its high bit set.
// Returns -1 when it is negative or too large.
int64_t header_number(const char* field, size_t len) {
    const auto* p = reinterpret_cast<const unsigned char*>(field);
    uint64_t v = 0;
    if (p[0] & 0x80) {
        if (p[0] & 0x40) return -1;
        v = p[0] & 0x3f;
        for (size_t i = 1; i < len; ++i) {
            if (v >> 55) return -1;
            v = (v << 8) | p[i];
        }
        return static_cast<int64_t>(v);
    }
    size_t i = 0;
    while (i < len && p[i] == ' ') ++i;
    for (; i < len && p[i] >= '0' && p[i] <= '7'; ++i) {
        if (v >> 60) return -1;
        v = v * 8 + (p[i] - '0');
    }
    return static_cast<int64_t>(v);
}

// How often an entry's header blocks name its path and its link target.
struct NameSources {
    int pax_paths = 0;         // "path" records
    int pax_links = 0;         // "linkpath" records
    bool sparse_name = false;  // a "GNU.sparse.name" record (it names the file)
    int gnu_names = 0;         // GNU long-name ('L') headers
    int gnu_links = 0;         // GNU long-link ('K') headers
};

// Counts the name records in a PAX extended header body.
void count_pax_records(const char* body, size_t size, NameSources& n) {
    size_t pos = 0;
    while (pos < size) {
        size_t len = 0;
        size_t i = pos;
        while (i < size && body[i] >= '0' && body[i] <= '9' && len < size) {
            len = len * 10 + static_cast<size_t>(body[i] - '0');
            ++i;
        }
        if (i >= size || body[i] != ' ' || len == 0 || len > size - pos) return;
        std::string_view rec(body + i + 1, pos + len - i - 1);
        std::string_view key = rec.substr(0, rec.find('='));
        if (key == "path") ++n.pax_paths;
        if (key == "linkpath") ++n.pax_links;
        if (key == "GNU.sparse.name") n.sparse_name = true;
        pos += len;
    }
}

// The name sources of the header blocks `p[0, len)` of one entry: its
// extended and long-name headers with their bodies, then its own header.
NameSources name_sources(const char* p, size_t len) {
    NameSources n;
    while (len >= kBlock) {
        char type = p[156];
        if (type != 'x' && type != 'X' && type != 'L' && type != 'K') break;
        int64_t size = header_number(p + 124, 12);
        if (size < 0) break;
        uint64_t body = (static_cast<uint64_t>(size) + kBlock - 1) / kBlock * kBlock;
        if (body > len - kBlock) break;
        if (type == 'L') ++n.gnu_names;
        if (type == 'K') ++n.gnu_links;
        if (type == 'x' || type == 'X') count_pax_records(p + kBlock, static_cast<size_t>(size), n);
        p += kBlock + body;
        len -= kBlock + body;
    }
    return n;
}

}  // namespace

void TarInput::keep_window(const char* data, size_t n) {
    // Everything before the reader's consumed position is done with, except
    // the header blocks of the entry being read: while a header is read (and
    // no longer the previous entry's data skipped), libarchive's header
    // position is at or after where that data began.
    la_int64_t consumed = inner_ != nullptr ? archive_filter_bytes(inner_, 0) : -1;
    if (reading_header_ && consumed > 0) {
        la_int64_t header = archive_read_header_position(inner_);
        if (header >= 0 && static_cast<uint64_t>(header) >= data_start_) {
            consumed = std::min(consumed, header);
            uint64_t kept_end = window_start_ + window_.size();
            uint64_t from = static_cast<uint64_t>(header);
            if (kept_end > from && kept_end - from > kMaxHeaderBytes) {
                throw Error("the headers of one entry are longer than " +
                            std::to_string(kMaxHeaderBytes) + " bytes");
            }
        }
    }
    if (consumed > 0 && static_cast<uint64_t>(consumed) > window_start_) {
        uint64_t drop =
            std::min<uint64_t>(static_cast<uint64_t>(consumed) - window_start_, window_.size());
        window_.erase(0, static_cast<size_t>(drop));
        window_start_ += drop;
    }
    window_.append(data, n);
}

void TarInput::check_headers(int64_t start, int64_t end, const std::string& path) const {
    if (start < 0 || end < start || static_cast<uint64_t>(start) < window_start_ ||
        static_cast<uint64_t>(end) > window_start_ + window_.size()) {
        spdlog::debug("layer tar: header blocks of {} not kept; not checked", path);
        return;
    }
    NameSources n = name_sources(window_.data() + (static_cast<uint64_t>(start) - window_start_),
                                 static_cast<size_t>(end - start));
    bool pax_named = n.pax_paths > 0 || n.sparse_name;
    std::string where = "layer tar entry '" + path + "': ";
    if (n.pax_paths > 1 || n.gnu_names > 1 || (pax_named && n.gnu_names > 0)) {
        throw Error(where +
                    "the name is given twice (PAX path and GNU long-name records); "
                    "tar readers disagree on which one wins");
    }
    if (n.pax_links > 1 || n.gnu_links > 1 || (n.pax_links > 0 && n.gnu_links > 0)) {
        throw Error(where +
                    "the link target is given twice (PAX linkpath and GNU long-link "
                    "records); tar readers disagree on which one wins");
    }
}

void TarInput::note_end_marker() {
    la_int64_t start = archive_read_header_position(inner_);
    la_int64_t stop = archive_filter_bytes(inner_, 0);
    if (start < 0 || stop < start) return;
    end_start_ = static_cast<uint64_t>(start);
    lone_end_ = static_cast<uint64_t>(stop - start) < 2 * kBlock;
    uint64_t kept_end = window_start_ + window_.size();
    if (lone_end_ && static_cast<uint64_t>(stop) >= window_start_ &&
        static_cast<uint64_t>(stop) <= kept_end) {
        // Bytes the tar reader was handed after the marker.
        check_after_lone_block(window_.data() + (static_cast<uint64_t>(stop) - window_start_),
                               static_cast<size_t>(kept_end - static_cast<uint64_t>(stop)),
                               static_cast<uint64_t>(stop));
    }
}

void TarInput::check_after_lone_block(const char* data, size_t n, uint64_t offset) const {
    for (size_t i = 0; i < n; ++i) {
        if (data[i] != 0) {
            throw Error("layer tar: data at byte " + std::to_string(offset + i) +
                        " follows a lone zero block at byte " + std::to_string(end_start_) +
                        " (an end-of-archive marker is two zero blocks)");
        }
    }
}

}  // namespace strata::codec
