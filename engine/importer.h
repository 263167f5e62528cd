// `strata import`: an image archive into the store.
//
// Each layer's id is its OCI ChainID (hex, without "sha256:"), so images
// that share base layers share layers. A layer already present and ready is
// reused without reading its blob. A new layer is streamed once from the
// archive through the decompressor into the layer directory while the
// compressed bytes are checked against the blob digest and the uncompressed
// bytes against the config's DiffID; a mismatch fails that layer before it
// is marked ready, so the store is left as it was before that layer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/driver.h"

namespace strata {

struct ImportProgress {
    size_t layer_index = 0;  // 1-based, of layer_count
    size_t layer_count = 0;
    uint64_t bytes = 0;      // archive bytes read for this layer so far
    bool reused = false;     // this layer was already in the store
};

struct ImportResult {
    std::string image_name;
    std::string top_layer;
    std::vector<std::string> layers;  // base first
    size_t new_layers = 0;
};

// Imports every image of the archive (the last one's name may be replaced
// by `name`); returns the result for the last image.
ImportResult import_image(Driver& driver, const std::filesystem::path& archive,
                          const std::optional<std::string>& name,
                          const std::function<void(const ImportProgress&)>& progress = {});

}  // namespace strata
