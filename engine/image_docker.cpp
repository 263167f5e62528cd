// docker-archive layouts: manifest.json, and the legacy one with a `json`
// per layer directory (see image_archive.h).
//
// docker-archive invariants: the config digest is the sha256 of the config
// entry's bytes, and a config or layer named by its digest ("<hex>.json",
// "blobs/sha256/<hex>") has that digest (configs are checked here, layer
// blobs by the importer through blob_digest); a config lists exactly one
// diff_id per layer.
//
// Legacy invariants: layers are ordered by their `parent` links, base first,
// with no loop and no parent missing; the top layer's `json` stands in for
// the config, and diff_ids are unknown ("").
#include <algorithm>
#include <map>
#include <set>

#include "engine/digest.h"
#include "engine/error.h"
#include "engine/image_formats.h"

namespace strata::image {
namespace {

// The media type LayerSources (Docker 25) gives the layer with `diff_id` or
// `blob_digest`, or "".
std::string layer_source_type(const Doc& doc, const Json& item, const std::string& p,
                              const std::string& diff_id, const std::string& blob_digest) {
    const Json* sources = doc.member(item, "LayerSources");
    if (sources == nullptr) return "";
    doc.object(*sources, p + "LayerSources");
    for (const std::string& key : {diff_id, blob_digest}) {
        const Json* source = key.empty() ? nullptr : doc.member(*sources, key);
        if (source == nullptr) continue;
        std::string label = p + "LayerSources[\"" + key + "\"]";
        doc.object(*source, label);
        return doc.string(*source, "mediaType", label + ".mediaType", false);
    }
    return "";
}

// Checks that the config's bytes have the digest its names (as written and
// as resolved) claim, if they claim one.
void check_config_name(const Doc& doc, const std::string& p, const std::string& written,
                       const std::string& resolved, const std::string& actual) {
    for (const std::string& name : {normalize_entry_name(written).value_or(""), resolved}) {
        std::string claimed = digest_from_name(name, true);
        if (!claimed.empty() && claimed != actual) {
            doc.fail(p + "Config '" + written + "' has digest " + actual + ", not the " + claimed +
                     " its name says");
        }
    }
}

ImageManifest docker_image(const ArchiveIndex& index, const Doc& doc, const Json& item,
                           const std::string& p) {
    doc.object(item, p.empty() ? "the image entry" : p.substr(0, p.size() - 1));
    ImageManifest m;

    std::string config_name = doc.string(item, "Config", p + "Config", true);
    auto config = index.find(config_name);
    if (!config) doc.fail(p + "Config '" + config_name + "' is not in the archive");
    std::string text = index.read_document(config->name);
    m.config_digest = sha256_digest(text);
    check_config_name(doc, p, config_name, config->name, m.config_digest);
    std::vector<std::string> diff_ids = config_diff_ids(Doc(index, config->name, text));
    m.config_json = std::move(text);

    if (item.find("Layers") == item.end()) doc.fail(p + "Layers is missing");
    std::vector<std::string> layers = doc.strings(item, "Layers", p + "Layers");
    if (layers.size() != diff_ids.size()) {
        doc.fail(p + "Layers lists " + std::to_string(layers.size()) + " layers, but config '" +
                 config->name + "' rootfs.diff_ids lists " + std::to_string(diff_ids.size()));
    }
    for (size_t i = 0; i < layers.size(); ++i) {
        std::string label = p + "Layers[" + std::to_string(i) + "] '" + layers[i] + "'";
        auto blob = index.find(layers[i]);
        if (!blob) doc.fail(label + " is not in the archive");
        ImageLayerRef ref;
        ref.blob = blob->name;
        ref.blob_digest = digest_from_name(blob->name, false);
        if (ref.blob_digest.empty()) {
            ref.blob_digest = digest_from_name(normalize_entry_name(layers[i]).value_or(""), false);
        }
        ref.diff_id = diff_ids[i];
        ref.media_type = layer_source_type(doc, item, p, ref.diff_id, ref.blob_digest);
        ref.empty = blob->size == 0;
        m.layers.push_back(std::move(ref));
    }

    std::vector<std::string> tags = doc.strings(item, "RepoTags", p + "RepoTags");
    if (!tags.empty()) m.name = tags.front();
    return m;
}

}  // namespace

std::vector<ImageManifest> parse_docker_archive(const ArchiveIndex& index) {
    Doc doc(index, "manifest.json");
    const Json& list = doc.array(doc.root(), "the document");
    if (list.empty()) doc.fail("lists no images");

    // With one image, values are named as in the document ("Layers[1]");
    // with several, after their image ("[2].Layers[1]").
    std::vector<ImageManifest> images;
    for (size_t i = 0; i < list.size(); ++i) {
        std::string p = list.size() == 1 ? "" : "[" + std::to_string(i) + "].";
        images.push_back(docker_image(index, doc, list[i], p));
    }
    return images;
}

std::vector<std::string> legacy_layer_ids(const ArchiveIndex& index) {
    std::vector<std::string> ids;
    std::set<std::string> seen;
    const std::string leaf = "/json";
    for (const std::string& name : index.names()) {
        if (name.size() <= leaf.size() ||
            name.compare(name.size() - leaf.size(), leaf.size(), leaf) != 0) {
            continue;
        }
        std::string id = name.substr(0, name.size() - leaf.size());
        if (id.find('/') != std::string::npos || seen.count(id) != 0) continue;
        if (index.find(id + "/layer.tar")) {
            seen.insert(id);
            ids.push_back(id);
        }
    }
    return ids;
}

namespace {

struct LegacyLayer {
    std::string json;    // the layer's `json` document
    std::string parent;  // "" for a base layer
    ArchiveIndex::Entry blob;
};

// (image name, top layer id) pairs: from `repositories` when there is one,
// else the one layer that is no layer's parent.
std::vector<std::pair<std::string, std::string>> legacy_tops(
    const ArchiveIndex& index, const std::map<std::string, LegacyLayer>& layers,
    const std::vector<std::string>& ids) {
    std::vector<std::pair<std::string, std::string>> tops;
    if (index.find("repositories")) {
        Doc doc(index, "repositories");
        for (const auto& [repo, tags] : doc.object(doc.root(), "the document").items()) {
            for (const auto& [tag, id] : doc.object(tags, "'" + repo + "'").items()) {
                std::string name = repo + ":" + tag;
                if (!id.is_string())
                    doc.fail("'" + name + "' is " + id.type_name() + ", not a string");
                std::string top = id.get<std::string>();
                if (layers.count(top) == 0) {
                    doc.fail("'" + name + "' names layer " + top + ", which is not in the archive");
                }
                auto same = [&](const auto& t) { return t.second == top; };
                if (std::none_of(tops.begin(), tops.end(), same)) tops.emplace_back(name, top);
            }
        }
        if (tops.empty()) doc.fail("names no image");
        return tops;
    }

    std::set<std::string> parents;
    for (const auto& [id, layer] : layers) parents.insert(layer.parent);
    std::vector<std::string> candidates;
    for (const std::string& id : ids) {
        if (parents.count(id) == 0) candidates.push_back(id);
    }
    if (candidates.empty()) {
        fail(index, "legacy layers", "every layer is some layer's parent (the parent links loop)");
    }
    if (candidates.size() != 1) {
        std::sort(candidates.begin(), candidates.end());
        std::string list;
        for (const std::string& id : candidates) list += (list.empty() ? "" : ", ") + id;
        fail(index, "legacy layers",
             std::to_string(candidates.size()) + " layers are no layer's parent (" + list +
                 ") and there is no repositories file naming the image");
    }
    tops.emplace_back("", candidates.front());
    return tops;
}

}  // namespace

std::vector<ImageManifest> parse_docker_legacy(const ArchiveIndex& index,
                                               const std::vector<std::string>& ids) {
    std::map<std::string, LegacyLayer> layers;
    for (const std::string& id : ids) {
        Doc doc(index, id + "/json");
        const Json& root = doc.object(doc.root(), "the document");
        std::string own = doc.string(root, "id", "id", false);
        if (!own.empty() && own != id) doc.fail("id '" + own + "' is not its directory's name");
        LegacyLayer layer{doc.text(), doc.string(root, "parent", "parent", false),
                          *index.find(id + "/layer.tar")};
        layers.emplace(id, std::move(layer));
    }

    std::vector<ImageManifest> images;
    for (const auto& [name, top] : legacy_tops(index, layers, ids)) {
        // Walk from the top down the parent links, then turn the chain around.
        std::vector<std::string> chain;
        std::set<std::string> seen;
        for (std::string id = top; !id.empty(); id = layers.at(id).parent) {
            if (layers.count(id) == 0) {
                fail(index, chain.back() + "/json", "parent '" + id + "' is not in the archive");
            }
            if (!seen.insert(id).second) {
                fail(index, chain.back() + "/json", "parent links loop back to " + id);
            }
            chain.push_back(id);
        }
        std::reverse(chain.begin(), chain.end());

        ImageManifest m;
        m.name = name;
        m.config_json = layers.at(top).json;
        m.config_digest = sha256_digest(m.config_json);
        for (const std::string& id : chain) {
            const LegacyLayer& layer = layers.at(id);
            ImageLayerRef ref;
            ref.blob = layer.blob.name;
            ref.empty = layer.blob.size == 0;
            m.layers.push_back(std::move(ref));
        }
        images.push_back(std::move(m));
    }
    return images;
}

}  // namespace strata::image
