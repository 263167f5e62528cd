#include "engine/importer.h"

#include <spdlog/spdlog.h>

#include "engine/layer_codec.h"
#include "engine/tar_input.h"
#include "engine/digest.h"
#include "engine/error.h"
#include "engine/fault.h"
#include "engine/image_archive.h"

namespace strata {

namespace {

// Counts bytes for the progress display as they pass.
class ProgressSource : public ByteSource {
public:
    ProgressSource(ByteSource& inner, ImportProgress& p,
                   const std::function<void(const ImportProgress&)>& report)
        : inner_(inner), p_(p), report_(report) {}
    size_t read(void* buf, size_t n) override {
        size_t got = inner_.read(buf, n);
        p_.bytes += got;
        if (report_ && (p_.bytes - last_ >= (1u << 20) || got == 0)) {
            last_ = p_.bytes;
            report_(p_);
        }
        return got;
    }

private:
    ByteSource& inner_;
    ImportProgress& p_;
    const std::function<void(const ImportProgress&)>& report_;
    uint64_t last_ = 0;
};

// The DiffID of a blob whose config gives none (legacy archives): one
// extra read of the blob through the decompressor.
std::string compute_diff_id(ImageArchive& archive, const ImageLayerRef& ref);

std::string import_layer(Driver& driver, ImageArchive& archive, const ImageLayerRef& ref,
                         const std::string& parent_chain, const std::optional<std::string>& parent,
                         ImportProgress& progress,
                         const std::function<void(const ImportProgress&)>& report,
                         std::vector<std::string>& created) {
    std::string diff_id = ref.diff_id.empty() ? compute_diff_id(archive, ref) : ref.diff_id;
    std::string chain = chain_id(parent_chain, diff_id);
    std::string id = digest_hex(chain);

    if (driver.exists(id)) {
        progress.reused = true;
        if (report) report(progress);
        return chain;
    }

    auto blob = archive.open_blob(ref.blob);
    HashingSource hashed(*blob);
    ProgressSource counted(hashed, progress, report);
    auto check = [&](const ApplyResult& r) {
        if (r.diff_digest != diff_id) {
            throw Error("layer " + ref.blob + ": content digest " + r.diff_digest +
                        " does not match the DiffID " + diff_id + " in the image config");
        }
        hashed.drain();
        std::string blob_digest = hashed.digest();
        if (!ref.blob_digest.empty() && blob_digest != ref.blob_digest) {
            throw Error("layer " + ref.blob + ": blob digest " + blob_digest +
                        " does not match " + ref.blob_digest);
        }
    };
    // Another import may be making the same layer right now: the driver
    // decides under the store lock whether it is still needed.
    ApplyOptions options;
    options.check = check;
    options.reuse_digest = diff_id;
    bool reused = false;
    options.reused = &reused;
    driver.apply_diff(id, parent, counted, options);
    if (reused) {
        progress.reused = true;
        if (report) report(progress);
        return chain;
    }
    created.push_back(id);
    crash_point("import.after_layer");
    return chain;
}

}  // namespace

namespace {

std::string compute_diff_id(ImageArchive& archive, const ImageLayerRef& ref) {
    auto blob = archive.open_blob(ref.blob);
    codec::TarInput tar(*blob, ApplyLimits{}.max_bytes);
    codec::TarEntry entry;
    while (tar.next(entry)) {
        const void* buf;
        size_t len;
        int64_t offset;
        while (tar.read_block(&buf, &len, &offset)) {
        }
    }
    tar.finish();
    return tar.digest();
}

}  // namespace

namespace {

// Removes the layers an import made, newest first, so that a refused image
// leaves the store as it was. A crash before this runs leaves them as ready
// layers that a later import reuses.
void roll_back(Driver& driver, const std::vector<std::string>& created) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
        try {
            driver.remove(*it);
            spdlog::info("import: removed layer {} of the refused image", *it);
        } catch (const std::exception& e) {
            spdlog::error("import: could not remove layer {} of the refused image: {}", *it,
                          e.what());
        }
    }
}

ImportResult import_one(Driver& driver, ImageArchive& archive, const ImageManifest& image,
                        const std::string& archive_name,
                        const std::function<void(const ImportProgress&)>& report) {
    ImportResult one;
    std::vector<std::string> created;
    std::string chain;
    std::optional<std::string> parent;
    try {
        for (size_t l = 0; l < image.layers.size(); ++l) {
            ImportProgress progress;
            progress.layer_index = l + 1;
            progress.layer_count = image.layers.size();
            try {
                chain = import_layer(driver, archive, image.layers[l], chain, parent, progress,
                                     report, created);
            } catch (const std::exception& e) {
                throw Error("import " + archive_name + ": layer " + std::to_string(l + 1) + "/" +
                            std::to_string(image.layers.size()) + ": " + e.what());
            }
            parent = digest_hex(chain);
            one.layers.push_back(*parent);
        }
    } catch (...) {
        roll_back(driver, created);
        throw;
    }
    one.top_layer = *parent;
    one.new_layers = created.size();
    return one;
}

}  // namespace

ImportResult import_image(Driver& driver, const std::filesystem::path& path,
                          const std::optional<std::string>& name,
                          const std::function<void(const ImportProgress&)>& report) {
    auto archive = ImageArchive::open(path);
    const auto& images = archive->images();
    for (const ImageManifest& image : images) {
        if (image.layers.empty()) {
            throw Error("image archive " + path.string() + ": image '" + image.name +
                        "' has no layers");
        }
    }

    ImportResult result;
    for (size_t i = 0; i < images.size(); ++i) {
        const ImageManifest& image = images[i];
        ImportResult one = import_one(driver, *archive, image, path.string(), report);
        one.image_name = (i + 1 == images.size() && name) ? *name : image.name;
        if (one.image_name.empty()) one.image_name = digest_hex(image.config_digest).substr(0, 12);

        ImageRow row{one.image_name, one.top_layer, image.config_json, image.config_digest,
                     archive->format(), ""};
        Catalog::Txn txn(driver.catalog());
        driver.catalog().upsert_image(row);
        driver.catalog().log("import", one.top_layer, "ok",
                             one.image_name + " (" + std::to_string(one.new_layers) + " new of " +
                                 std::to_string(one.layers.size()) + " layers)");
        txn.commit();
        spdlog::info("import: image {} top layer {} ({} new of {} layers)", one.image_name,
                     one.top_layer, one.new_layers, one.layers.size());
        result = one;
    }
    return result;
}

}  // namespace strata
