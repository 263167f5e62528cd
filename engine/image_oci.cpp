// The OCI image layout (see image_archive.h): oci-layout, index.json and
// content-addressed blobs under blobs/sha256/.
//
// Invariants: every manifest, index and config is read only after its size
// and sha256 matched its descriptor; every layer blob exists with the size
// its descriptor gives (its digest is the importer's to check, as it streams
// the blob once); a config lists exactly one diff_id per layer.
//
// Which descriptors are images: each entry of index.json is one image, and
// a nested index stands for one image whose linux/amd64 entry (else its
// first) is taken. When every entry of index.json itself carries a platform
// (a layout written as one multi-platform image), index.json is treated as
// such an index.
#include <algorithm>
#include <optional>
#include <set>

#include "engine/digest.h"
#include "engine/error.h"
#include "engine/image_formats.h"

namespace strata::image {
namespace {

const std::set<std::string> kManifestTypes = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
};
const std::set<std::string> kIndexTypes = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
};
constexpr int kMaxIndexDepth = 8;

struct Descriptor {
    std::string label;  // how its document names it: "manifests[0]", "config"
    std::string media_type;
    std::string digest;
    std::optional<uint64_t> size;
    const Json* annotations = nullptr;
    const Json* platform = nullptr;

    std::string blob() const { return "blobs/sha256/" + digest.substr(7); }
};

Descriptor descriptor(const Doc& doc, const Json& value, const std::string& label) {
    doc.object(value, label);
    Descriptor d;
    d.label = label;
    d.media_type = doc.string(value, "mediaType", label + ".mediaType", false);
    d.digest = doc.string(value, "digest", label + ".digest", true);
    try {
        digest_hex(d.digest);
    } catch (const Error&) {
        size_t colon = d.digest.find(':');
        // LIMITATION: only sha256 digests are read (sha512 needs a Sha512 beside Sha256).
        if (colon != std::string::npos && d.digest.substr(0, colon) != "sha256") {
            doc.fail(label + ".digest '" + d.digest + "' uses " + d.digest.substr(0, colon) +
                     "; only sha256 is supported");
        }
        doc.fail(label + ".digest '" + d.digest + "' is not a sha256 digest");
    }
    if (const Json* size = doc.member(value, "size")) {
        if (!size->is_number_unsigned()) {
            doc.fail(label + ".size is " + size->type_name() + ", not a byte count");
        }
        d.size = size->get<uint64_t>();
    }
    d.annotations = doc.member(value, "annotations");
    if (d.annotations != nullptr) doc.object(*d.annotations, label + ".annotations");
    d.platform = doc.member(value, "platform");
    if (d.platform != nullptr) doc.object(*d.platform, label + ".platform");
    return d;
}

// The descriptors in array member `key` of the document's root; empty if the
// member is absent or null.
std::vector<Descriptor> descriptors(const Doc& doc, const std::string& key) {
    const Json& root = doc.object(doc.root(), "the document");
    std::vector<Descriptor> out;
    const Json* list = doc.member(root, key);
    if (list == nullptr) return out;
    doc.array(*list, key);
    for (size_t i = 0; i < list->size(); ++i) {
        out.push_back(descriptor(doc, (*list)[i], key + "[" + std::to_string(i) + "]"));
    }
    return out;
}

// The entry holding d's blob. Throws Error if it is absent or of another size.
ArchiveIndex::Entry blob_entry(const ArchiveIndex& index, const Doc& doc, const Descriptor& d) {
    auto entry = index.find(d.blob());
    if (!entry) doc.fail(d.label + " " + d.digest + " is not in the archive (no " + d.blob() + ")");
    if (d.size && *d.size != entry->size) {
        doc.fail(d.label + " " + d.digest + " says " + std::to_string(*d.size) + " bytes, but " +
                 d.blob() + " has " + std::to_string(entry->size));
    }
    return *entry;
}

// d's blob as a document, after its size and digest matched d.
Doc read_blob(const ArchiveIndex& index, const Doc& doc, const Descriptor& d) {
    ArchiveIndex::Entry entry = blob_entry(index, doc, d);
    std::string text = index.read_document(entry.name);
    std::string actual = sha256_digest(text);
    if (actual != d.digest) {
        doc.fail(d.label + ": " + d.blob() + " has digest " + actual + ", not the descriptor's " +
                 d.digest);
    }
    return Doc(index, d.blob(), std::move(text));
}

// The image name an annotations object gives, or "".
std::string ref_name(const Doc& doc, const Json* annotations, const std::string& label) {
    if (annotations == nullptr) return "";
    for (const char* key : {"io.containerd.image.name", "org.opencontainers.image.ref.name"}) {
        std::string name = doc.string(*annotations, key, label + "." + key, false);
        if (!name.empty()) return name;
    }
    return "";
}

size_t pick_platform(const Doc& doc, const std::vector<Descriptor>& list) {
    for (size_t i = 0; i < list.size(); ++i) {
        const Json* p = list[i].platform;
        if (p == nullptr) continue;
        std::string label = list[i].label + ".platform";
        if (doc.string(*p, "os", label + ".os", false) == "linux" &&
            doc.string(*p, "architecture", label + ".architecture", false) == "amd64") {
            return i;
        }
    }
    return 0;
}

// Whether d (in `doc`) is an index rather than an image manifest. Without a
// media type in the descriptor, the blob's own says, else its shape.
bool is_index(const Doc& doc, const Descriptor& d, const Doc& blob) {
    if (kIndexTypes.count(d.media_type) != 0) return true;
    if (kManifestTypes.count(d.media_type) != 0) return false;
    if (!d.media_type.empty()) {
        doc.fail(d.label + " has media type '" + d.media_type +
                 "', which is neither an image manifest nor an index");
    }
    const Json& root = blob.object(blob.root(), "the document");
    std::string own = blob.string(root, "mediaType", "mediaType", false);
    if (kIndexTypes.count(own) != 0) return true;
    if (kManifestTypes.count(own) != 0) return false;
    return root.contains("manifests");
}

ImageManifest image_from_manifest(const ArchiveIndex& index, const Doc& doc) {
    const Json& root = doc.object(doc.root(), "the document");
    const Json* config_value = doc.member(root, "config");
    if (config_value == nullptr) doc.fail("config is missing");
    Descriptor config = descriptor(doc, *config_value, "config");
    Doc config_doc = read_blob(index, doc, config);
    std::vector<std::string> diff_ids = config_diff_ids(config_doc);

    if (!root.contains("layers")) doc.fail("layers is missing");
    std::vector<Descriptor> layers = descriptors(doc, "layers");
    if (layers.size() != diff_ids.size()) {
        doc.fail("layers lists " + std::to_string(layers.size()) + " layers, but config '" +
                 config.blob() + "' rootfs.diff_ids lists " + std::to_string(diff_ids.size()));
    }

    ImageManifest m;
    m.name = ref_name(doc, doc.member(root, "annotations"), "annotations");
    m.config_json = config_doc.text();
    m.config_digest = config.digest;
    for (size_t i = 0; i < layers.size(); ++i) {
        ArchiveIndex::Entry entry = blob_entry(index, doc, layers[i]);
        ImageLayerRef ref;
        ref.blob = entry.name;
        ref.blob_digest = layers[i].digest;
        ref.diff_id = diff_ids[i];
        ref.media_type = layers[i].media_type;
        ref.empty = entry.size == 0;
        m.layers.push_back(std::move(ref));
    }
    return m;
}

// The image d (a descriptor in `doc`) stands for, following nested indexes.
ImageManifest resolve(const ArchiveIndex& index, const Doc& doc, const Descriptor& d, int depth) {
    if (depth > kMaxIndexDepth) {
        doc.fail(d.label + ": indexes nest more than " + std::to_string(kMaxIndexDepth) +
                 " levels deep");
    }
    Doc blob = read_blob(index, doc, d);
    if (!is_index(doc, d, blob)) return image_from_manifest(index, blob);

    std::vector<Descriptor> children = descriptors(blob, "manifests");
    if (children.empty()) blob.fail("manifests lists nothing");
    const Descriptor& pick = children[pick_platform(blob, children)];
    ImageManifest m = resolve(index, blob, pick, depth + 1);
    if (m.name.empty()) m.name = ref_name(blob, pick.annotations, pick.label + ".annotations");
    return m;
}

void check_layout_file(const ArchiveIndex& index) {
    if (!index.find("oci-layout")) {
        fail(index, "oci-layout", "is missing (an OCI layout has it beside index.json)");
    }
    Doc doc(index, "oci-layout");
    const Json& root = doc.object(doc.root(), "the document");
    std::string version = doc.string(root, "imageLayoutVersion", "imageLayoutVersion", true);
    if (version.rfind("1.", 0) != 0) {
        doc.fail("imageLayoutVersion '" + version + "' is not 1.x, the version strata reads");
    }
}

}  // namespace

std::vector<ImageManifest> parse_oci_layout(const ArchiveIndex& index) {
    check_layout_file(index);
    Doc top(index, "index.json");
    std::vector<Descriptor> list = descriptors(top, "manifests");
    if (list.empty()) top.fail("manifests lists no image");

    bool one_image = list.size() > 1 && std::all_of(list.begin(), list.end(), [](const auto& d) {
                         return d.platform != nullptr;
                     });
    std::vector<ImageManifest> images;
    for (size_t i = 0; i < list.size(); ++i) {
        const Descriptor& d = one_image ? list[pick_platform(top, list)] : list[i];
        ImageManifest m = resolve(index, top, d, 1);
        std::string name = ref_name(top, d.annotations, d.label + ".annotations");
        if (!name.empty()) m.name = name;
        images.push_back(std::move(m));
        if (one_image) break;
    }
    return images;
}

}  // namespace strata::image
