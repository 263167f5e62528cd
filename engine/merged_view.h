// Lookups in the tree a chain of layer directories presents when stacked.
//
// A MergedView answers "what is at this path" for a list of layer
// directories, nearest first, using the rules of overlay_format.h: the
// nearest layer that has the path wins; a whiteout hides it; an opaque
// directory, or a non-directory, in a nearer layer hides everything below it
// in farther layers. Paths are relative ("usr/bin/ls"), never followed
// through symlinks. Thread-compatible: one thread at a time.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata {

class MergedView {
public:
    // `layers`: layer directories, nearest (topmost) first. May be empty.
    explicit MergedView(std::vector<std::filesystem::path> layers);

    struct Hit {
        std::filesystem::path real_path;  // the file in the layer that holds it
        size_t layer_index;               // index into the layers given
        struct stat st;
    };

    // What the merged tree has at `rel`, or nullopt if nothing (absent or
    // whited out). Throws Error on I/O errors other than absence.
    std::optional<Hit> lookup(const std::string& rel) const;

    // Names in the merged directory `rel` (not "." or ".."), sorted, with
    // whited-out names removed. Empty if `rel` is not a merged directory.
    std::vector<std::string> list(const std::string& rel) const;

    const std::vector<std::filesystem::path>& layers() const { return layers_; }

private:
    std::vector<std::filesystem::path> layers_;
};

}  // namespace strata
