// How a posix layer directory records its changes.
//
// A layer directory holds only that layer's own changes, in the form the
// kernel's overlayfs reads directly, so a chain of layer directories can be
// mounted as lowerdirs without conversion:
//
//   - a deleted path is a character device 0:0 (a whiteout);
//   - a directory whose lower contents are hidden carries the xattr
//     trusted.overlay.opaque = "y" (an opaque directory);
//   - everything else is the file itself, with its metadata.
//
// The copying mount mode and the tar codec interpret the same form, so both
// mount modes see identical trees.
#pragma once

#include <sys/stat.h>

#include <string>

namespace strata {

inline constexpr const char kOpaqueXattr[] = "trusted.overlay.opaque";
inline constexpr const char kWhiteoutPrefix[] = ".wh.";
inline constexpr const char kOpaqueMarker[] = ".wh..wh..opq";

// True if `st` describes a whiteout (a character device 0:0).
bool is_whiteout(const struct stat& st);

// Creates a whiteout named `name` in directory `dirfd`. The name must not
// exist. Throws Error naming `display_path` on failure.
void make_whiteout(int dirfd, const char* name, const std::string& display_path);

// True if the open directory `fd` is marked opaque.
bool is_opaque(int fd);

// Marks the open directory `fd` opaque. Throws Error naming `display_path`.
void set_opaque(int fd, const std::string& display_path);

// True for xattr names that belong to the overlay form itself and are never
// part of a layer's content (trusted.overlay.*).
bool is_overlay_xattr(const std::string& name);

}  // namespace strata
