// The parsers of the image layouts behind ImageArchive::open, and the JSON
// document reader they share. Internal to the engine.
//
// Every parser reads documents only through an ArchiveIndex, so documents are
// size-limited, and every message it raises has the form
// "image archive <path>: <document>: <what>", the document being the entry
// name ("manifest.json", "blobs/sha256/<hex>", "<id>/json").
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/archive_index.h"
#include "engine/image_archive.h"

namespace strata::image {

using Json = nlohmann::ordered_json;

// A parsed JSON document of an archive, with typed accessors whose failures
// name the document and the value (`label`, e.g. "Layers[1]").
class Doc {
public:
    // Reads entry `name` of `index` and parses it. Throws Error if it is
    // absent, too large or not well-formed JSON.
    Doc(const ArchiveIndex& index, const std::string& name);

    // Parses `text`, the content of entry `name`. Throws Error if it is not
    // well-formed JSON.
    Doc(const ArchiveIndex& index, const std::string& name, std::string text);

    const Json& root() const { return root_; }
    const std::string& text() const { return text_; }
    const std::string& name() const { return name_; }

    // Throws Error "<where>: <name>: <what>".
    [[noreturn]] void fail(const std::string& what) const;

    // `value`, which must be an object (or an array); else throws Error.
    const Json& object(const Json& value, const std::string& label) const;
    const Json& array(const Json& value, const std::string& label) const;

    // Member `key` of `object`, or nullptr if it is absent or null.
    const Json* member(const Json& object, const std::string& key) const;

    // Member `key` of `object` as a string; throws Error if it is absent
    // (only when `required`) or not a string. "" when absent and optional.
    std::string string(const Json& object, const std::string& key, const std::string& label,
                       bool required) const;

    // The array member `key` of `object` as strings; throws Error if it is
    // not an array of strings. Empty when absent or null.
    std::vector<std::string> strings(const Json& object, const std::string& key,
                                     const std::string& label) const;

private:
    const ArchiveIndex& index_;
    std::string name_;
    std::string text_;
    Json root_;
};

// Throws Error "<index.where()>: <doc>: <what>", for failures that are not
// about one value of a parsed document.
[[noreturn]] void fail(const ArchiveIndex& index, const std::string& doc, const std::string& what);

// rootfs.diff_ids of an image config, each checked to be a sha256 digest.
// Throws Error if the config is not an object or has no rootfs.diff_ids.
std::vector<std::string> config_diff_ids(const Doc& config);

// "sha256:<hex>" if normalised entry `name` is "blobs/sha256/<64 hex>", or
// (when `allow_json_name`) its last component is "<64 hex>.json"; else "".
std::string digest_from_name(const std::string& name, bool allow_json_name);

// docker-archive: the images manifest.json lists.
std::vector<ImageManifest> parse_docker_archive(const ArchiveIndex& index);

// Legacy docker-archive: ids of the directories that hold both `json` and
// `layer.tar`, in archive order; empty if the archive has none.
std::vector<std::string> legacy_layer_ids(const ArchiveIndex& index);

// Legacy docker-archive whose layer directories are `ids` (not empty).
std::vector<ImageManifest> parse_docker_legacy(const ArchiveIndex& index,
                                               const std::vector<std::string>& ids);

// OCI image layout: the images index.json leads to.
std::vector<ImageManifest> parse_oci_layout(const ArchiveIndex& index);

}  // namespace strata::image
