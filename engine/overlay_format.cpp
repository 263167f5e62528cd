#include "engine/overlay_format.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "engine/error.h"

namespace strata {

bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

void make_whiteout(int dirfd, const char* name, const std::string& display_path) {
    if (::mknodat(dirfd, name, S_IFCHR | 0000, makedev(0, 0)) != 0) {
        throw_errno("cannot create whiteout for " + display_path);
    }
}

bool is_opaque(int fd) {
    char value[2] = {0, 0};
    ssize_t n = ::fgetxattr(fd, kOpaqueXattr, value, sizeof value);
    return n == 1 && value[0] == 'y';
}

void set_opaque(int fd, const std::string& display_path) {
    if (::fsetxattr(fd, kOpaqueXattr, "y", 1, 0) != 0) {
        throw_errno("cannot mark directory " + display_path + " opaque");
    }
}

bool is_overlay_xattr(const std::string& name) {
    return name.rfind("trusted.overlay.", 0) == 0;
}

}  // namespace strata
