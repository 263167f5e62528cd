// Recovery: bringing a store back to a consistent state after a crash.
//
// Runs at every open of a store (under the store lock) and on `strata
// recover`. Every rule is idempotent, so a crash during recovery is
// recovered by the next run:
//
//   layer row state   what recovery does
//   creating          destroy the native layer (absent is fine), delete rows
//   applying          the same
//   removing          destroy the native layer and its removal copy, delete
//   ready             nothing (a missing native layer is reported by fsck)
//
//   mount rows made under an earlier boot: their mounts are gone; take down
//   any leftover (a copied tree is captured first) and delete the row.
//   mounts prepared with refcount 0 (a crash between a native step and its
//   commit): taken down.
//   native layers the catalog does not know: destroyed (collected).
//   scratch the backend left (half-built copied trees, mount and work
//   directories of layers that are gone): removed.
#pragma once

#include <string>
#include <vector>

#include "engine/backend.h"
#include "storage/catalog.h"

namespace strata {

// Returns one line per thing repaired (also logged); empty when clean.
// REQUIRES: the caller holds the store lock.
std::vector<std::string> run_recovery(Catalog& catalog, Backend& backend,
                                      const std::string& boot_id);

}  // namespace strata
