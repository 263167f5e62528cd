// ImageArchive::open: which layout an archive has, the JSON document reader
// the layout parsers share, and chain ids.
//
// Layout detection, in this order: manifest.json makes a docker-archive
// (Docker 25 archives also carry an OCI layout; manifest.json wins), else
// index.json an OCI layout, else directories holding `json` and `layer.tar`
// a legacy docker-archive. Anything else is refused with a hint, since a
// bare layer tar is the usual mistake.
#include "engine/image_archive.h"

#include "engine/digest.h"
#include "engine/error.h"
#include "engine/image_formats.h"

namespace strata {
namespace image {

namespace {

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string json_message(const std::exception& e) {
    std::string msg = e.what();
    if (msg.rfind("[json.exception.", 0) == 0) {
        size_t end = msg.find("] ");
        if (end != std::string::npos) msg.erase(0, end + 2);
    }
    return msg;
}

bool is_hex64(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

Doc::Doc(const ArchiveIndex& index, const std::string& name)
    : Doc(index, name, index.read_document(name)) {}

Doc::Doc(const ArchiveIndex& index, const std::string& name, std::string text)
    : index_(index), name_(name), text_(std::move(text)) {
    try {
        root_ = Json::parse(text_);
    } catch (const nlohmann::json::exception& e) {
        fail("malformed JSON: " + json_message(e));
    }
}

void fail(const ArchiveIndex& index, const std::string& doc, const std::string& what) {
    throw Error(index.where() + ": " + doc + ": " + what);
}

void Doc::fail(const std::string& what) const {
    image::fail(index_, name_, what);
}

const Json& Doc::object(const Json& value, const std::string& label) const {
    if (!value.is_object()) fail(label + " is " + value.type_name() + ", not an object");
    return value;
}

const Json& Doc::array(const Json& value, const std::string& label) const {
    if (!value.is_array()) fail(label + " is " + value.type_name() + ", not an array");
    return value;
}

const Json* Doc::member(const Json& object, const std::string& key) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string Doc::string(const Json& object, const std::string& key, const std::string& label,
                        bool required) const {
    const Json* value = member(object, key);
    if (value == nullptr) {
        if (required) fail(label + " is missing");
        return "";
    }
    if (!value->is_string()) fail(label + " is " + value->type_name() + ", not a string");
    return value->get<std::string>();
}

std::vector<std::string> Doc::strings(const Json& object, const std::string& key,
                                      const std::string& label) const {
    std::vector<std::string> out;
    const Json* value = member(object, key);
    if (value == nullptr) return out;
    array(*value, label);
    for (size_t i = 0; i < value->size(); ++i) {
        const Json& item = (*value)[i];
        std::string item_label = label + "[" + std::to_string(i) + "]";
        if (!item.is_string()) fail(item_label + " is " + item.type_name() + ", not a string");
        out.push_back(item.get<std::string>());
    }
    return out;
}

std::vector<std::string> config_diff_ids(const Doc& config) {
    const Json& root = config.object(config.root(), "the config");
    const Json* rootfs = config.member(root, "rootfs");
    if (rootfs == nullptr) config.fail("the config has no rootfs");
    config.object(*rootfs, "rootfs");
    if (rootfs->find("diff_ids") == rootfs->end()) config.fail("rootfs.diff_ids is missing");
    std::vector<std::string> ids = config.strings(*rootfs, "diff_ids", "rootfs.diff_ids");
    for (size_t i = 0; i < ids.size(); ++i) {
        try {
            digest_hex(ids[i]);
        } catch (const Error&) {
            config.fail("rootfs.diff_ids[" + std::to_string(i) + "] '" + ids[i] +
                        "' is not a sha256 digest");
        }
    }
    return ids;
}

std::string digest_from_name(const std::string& name, bool allow_json_name) {
    const std::string blobs = "blobs/sha256/";
    if (name.rfind(blobs, 0) == 0 && is_hex64(name.substr(blobs.size()))) {
        return "sha256:" + name.substr(blobs.size());
    }
    if (!allow_json_name) return "";
    size_t slash = name.rfind('/');
    std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
    if (base.size() == 64 + 5 && base.compare(64, 5, ".json") == 0 &&
        is_hex64(base.substr(0, 64))) {
        return "sha256:" + base.substr(0, 64);
    }
    return "";
}

}  // namespace image

namespace {

class ParsedImageArchive : public ImageArchive {
public:
    ParsedImageArchive(std::unique_ptr<ArchiveIndex> index, std::string format,
                       std::vector<ImageManifest> images)
        : index_(std::move(index)), format_(std::move(format)), images_(std::move(images)) {}

    const std::vector<ImageManifest>& images() const override { return images_; }

    std::unique_ptr<ByteSource> open_blob(const std::string& name) override {
        return index_->open_stream(name);
    }

    std::string format() const override { return format_; }

private:
    std::unique_ptr<ArchiveIndex> index_;
    std::string format_;
    std::vector<ImageManifest> images_;
};

}  // namespace

std::unique_ptr<ImageArchive> ImageArchive::open(const std::filesystem::path& path) {
    std::unique_ptr<ArchiveIndex> index = ArchiveIndex::open(path);

    std::string format;
    std::vector<ImageManifest> images;
    if (index->find("manifest.json")) {
        format = "docker-archive";
        images = image::parse_docker_archive(*index);
    } else if (index->find("index.json")) {
        format = index->is_directory() ? "oci-layout" : "oci-archive";
        images = image::parse_oci_layout(*index);
    } else if (auto ids = image::legacy_layer_ids(*index); !ids.empty()) {
        format = "docker-legacy";
        images = image::parse_docker_legacy(*index, ids);
    } else {
        throw Error(index->where() +
                    ": not an image archive (no manifest.json, index.json or legacy layer "
                    "json); a single layer tar can be applied with apply-diff");
    }
    return std::make_unique<ParsedImageArchive>(std::move(index), std::move(format),
                                                std::move(images));
}

std::string chain_id(const std::string& parent_chain, const std::string& diff_id) {
    digest_hex(diff_id);
    if (parent_chain.empty()) return diff_id;
    digest_hex(parent_chain);
    return sha256_digest(parent_chain + " " + diff_id);
}

}  // namespace strata
