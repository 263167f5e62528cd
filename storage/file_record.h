// One tar entry of a layer as the catalog's file index keeps it.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

struct FileRecord {
    std::string path;         // relative, no leading "/" or "./"; bytes, not necessarily UTF-8
    char type = 'f';          // f file, d dir, l symlink, h hard link, c char dev, b block dev,
                              // p fifo, w whiteout, o opaque marker
    uint32_t mode = 0;        // permission bits incl. setuid/setgid/sticky
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint64_t size = 0;        // bytes of content (regular files)
    int64_t mtime = 0;        // seconds since the epoch
    std::string link_target;  // symlink target or hard-link target path
    uint32_t dev_major = 0;
    uint32_t dev_minor = 0;
    std::string xattrs_json;  // {"name":"base64 value",...} or "" when none
};

}  // namespace strata
