// Image archives: what `strata import` reads.
//
// Three layouts are recognised by their content, not their name:
//   - docker-archive (`docker save`, `podman save`): manifest.json listing a
//     config and layer paths per image; layer entries may be symlinks to
//     other entries. Docker 25 writes an OCI layout plus manifest.json; the
//     manifest.json is preferred then.
//   - legacy docker-archive with no manifest.json: one directory per layer
//     holding `json` (with "id" and "parent") and `layer.tar`.
//   - OCI image layout (index.json, oci-layout, blobs/<alg>/<hex>), either as
//     a tar file or as a directory. Nested indexes are followed; for a
//     multi-platform index the linux/amd64 entry (else the first) is taken.
//
// Image names: a docker-archive's first RepoTags entry, a legacy archive's
// `repositories` "repo:tag", an OCI descriptor's io.containerd.image.name
// annotation, else its org.opencontainers.image.ref.name. Each entry of an
// OCI index.json is one image, unless every entry carries a platform: then
// index.json is itself read as one multi-platform image.
//
// The archive file is read in place: small documents (manifests, configs)
// are read whole, layer blobs are streamed once through open_blob(), and the
// archive is never extracted to disk. Documents are size-limited so a hostile
// archive cannot exhaust memory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/byte_stream.h"

namespace strata {

struct ImageLayerRef {
    std::string blob;         // entry name in the archive (or path in a layout dir)
    std::string blob_digest;  // "sha256:..." the blob must have, or "" if the layout gives none
    std::string diff_id;      // "sha256:..." of the uncompressed tar, or "" if unknown (legacy)
    std::string media_type;   // as given, or ""
    bool empty = false;       // the blob is zero bytes long (an empty layer)
};

struct ImageManifest {
    std::string name;           // first repo tag / ref name, or "" if none
    std::string config_json;    // the config document, verified against config_digest
    std::string config_digest;  // "sha256:..." (computed when the layout gives none)
    std::vector<ImageLayerRef> layers;  // base first
};

class ImageArchive {
public:
    virtual ~ImageArchive() = default;

    // Opens `path` (a tar file or an OCI layout directory) and parses its
    // manifests and configs. Throws Error saying what is missing or malformed
    // ("image archive X: manifest.json: ..."), including when the file is not
    // an image archive at all.
    static std::unique_ptr<ImageArchive> open(const std::filesystem::path& path);

    // Every image the archive describes, in archive order. At least one.
    virtual const std::vector<ImageManifest>& images() const = 0;

    // Streams the raw (possibly compressed) bytes of blob `name`. Throws
    // Error if the archive has no such entry.
    virtual std::unique_ptr<ByteSource> open_blob(const std::string& name) = 0;

    // A short name of the layout for messages ("docker-archive", "oci-archive",
    // "oci-layout", "docker-legacy").
    virtual std::string format() const = 0;
};

// Chain id of a layer whose parent has chain id `parent_chain` ("" for a
// base layer): the OCI image-spec ChainID, `diff_id` itself for a base layer,
// else the sha256 of "<parent_chain> <diff_id>", as "sha256:<hex>". Throws
// Error if either argument (other than an empty `parent_chain`) is not a
// well-formed sha256 digest.
std::string chain_id(const std::string& parent_chain, const std::string& diff_id);

}  // namespace strata
