// The copying mount mode, for kernels where overlayfs is not available.
//
// materialize() builds, in an empty directory, the tree a chain of layer
// directories presents (the same tree an overlay mount shows). capture()
// compares such a tree after use against the chain below the top layer and
// records the difference in the top layer directory in the overlay form, so
// that what was written through the mount belongs to that layer.
#pragma once

#include <filesystem>
#include <vector>

namespace strata {

// Fills the empty directory `dest` with the merged tree of `layers` (nearest
// first): contents, modes, owners, times, xattrs, symlinks, devices, fifos;
// files hard-linked inside one layer stay hard-linked. `dest` itself gets the
// metadata of the nearest layer's root, as an overlay mount shows it. No
// symlink is followed; whiteouts and trusted.overlay.* xattrs never appear in
// `dest`. Nothing is synced (a mount does not survive a reboot). Throws Error
// if a layer is missing, `dest` is not an empty directory, or a copy fails
// (then `dest` holds part of the tree and the caller discards it).
void materialize(const std::vector<std::filesystem::path>& layers,
                 const std::filesystem::path& dest);

// Makes `upper` (a layer directory) hold exactly the difference between the
// tree `mounted` and the merged tree of `lower` (nearest first): added and
// modified paths copied in, deleted ones turned into whiteouts, directories
// that replaced a non-directory marked opaque; whatever `upper` held before
// that is no longer needed is gone. The new layer's root gets the metadata
// of `mounted`'s root. Afterwards the merged tree of [upper] + lower equals
// `mounted` (see capture_plan.h for the rules).
//
// Crash safety: `upper` is never changed in place. The new layer is built in
// the sibling "<upper>.capture-tmp", every file and directory of it fsynced,
// then swapped with `upper` in one renameat2(RENAME_EXCHANGE), the parent
// fsynced, and the old tree deleted. A crash therefore leaves `upper` either
// entirely old or entirely new; the temporary tree it may leave is deleted
// by the next capture(). Requires RENAME_EXCHANGE on the file system.
// Throws Error (with `upper` unchanged unless the swap was done) if `mounted`
// holds a character device 0:0 (it would read as a whiteout) or on I/O errors.
void capture(const std::filesystem::path& mounted, const std::vector<std::filesystem::path>& lower,
             const std::filesystem::path& upper);

}  // namespace strata
