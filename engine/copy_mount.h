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
// files hard-linked inside one layer stay hard-linked. Throws Error.
void materialize(const std::vector<std::filesystem::path>& layers,
                 const std::filesystem::path& dest);

// Makes `upper` (a layer directory) hold exactly the difference between the
// tree `mounted` and the merged tree of `lower` (nearest first): added and
// modified paths copied in, deleted ones turned into whiteouts, directories
// that replaced a non-directory marked opaque. Throws Error.
void capture(const std::filesystem::path& mounted,
             const std::vector<std::filesystem::path>& lower,
             const std::filesystem::path& upper);

}  // namespace strata
