// libFuzzer targets for the image manifest, index and config parsers behind
// strata::ImageArchive::open. One source, four binaries, chosen by
// STRATA_FUZZ_IMAGE_MODE:
//
//   1 fuzz_oci_index       the input is index.json of an OCI layout directory
//   2 fuzz_oci_manifest    the input is the image manifest (or a nested
//                          index) blob; index.json names it by its digest and
//                          size, without a media type, so the blob's own
//                          mediaType or shape decides how it is read
//   3 fuzz_oci_config      the input is the config blob; the manifest is the
//                          fixture's with its config descriptor pointed at
//                          the input, and index.json points at that manifest
//   4 fuzz_docker_manifest the input is manifest.json of a docker-archive tar
//                          written per input with libarchive
//   5 fuzz_image_tar       the input is a whole image archive file (a tar,
//                          possibly compressed: docker-archive, legacy or
//                          OCI), which also fuzzes the tar index and its
//                          link resolution
//
// The OCI layout is tests/data/tzdata-oci-zstd.tar (or $STRATA_FUZZ_OCI_TAR)
// extracted once at start-up into the process's temporary root. Its config
// and layer digests are what the docker-archive is built around: the config
// as "blobs/sha256/<hex>" and "<hex>.json", each layer as a small stand-in
// blob "blobs/sha256/<hex>" with a symlink "<diff id hex>/layer.tar" to it.
//
// Findings (the process aborts, libFuzzer keeps the input): any exception
// other than strata::Error, any crash or sanitizer report, and, when open()
// succeeds, a broken promise of image_archive.h: no image, a config_json
// whose sha256 is not config_digest, or a diff_id chain_id() refuses.
#include <archive.h>
#include <archive_entry.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/digest.h"
#include "engine/error.h"
#include "engine/image_archive.h"
#include "tests/fuzz/fuzz_support.h"

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using strata::fuzz::finding;

namespace {

enum Mode {
    kOciIndex = 1,
    kOciManifest = 2,
    kOciConfig = 3,
    kDockerManifest = 4,
    kImageTar = 5,
};
constexpr Mode kMode = static_cast<Mode>(STRATA_FUZZ_IMAGE_MODE);

struct Fixture {
    fs::path root;
    fs::path layout;  // the extracted OCI layout
    Json index;       // its index.json
    Json manifest;    // the manifest index.json names
    std::string config_text;
};

std::string blob_path(const std::string& digest) {
    return "blobs/sha256/" + strata::digest_hex(digest);
}

Fixture make_fixture() {
    Fixture f;
    f.root = strata::fuzz::make_temp_root("strata-fuzz-image");
    f.layout = f.root / "layout";
    fs::create_directory(f.layout);
    const char* env = std::getenv("STRATA_FUZZ_OCI_TAR");
    strata::fuzz::extract_tar(env != nullptr && *env != '\0' ? env : STRATA_FUZZ_OCI_TAR, f.layout);
    f.index = Json::parse(strata::fuzz::read_file(f.layout / "index.json"));
    std::string manifest_digest = f.index.at("manifests").at(0).at("digest");
    f.manifest = Json::parse(strata::fuzz::read_file(f.layout / blob_path(manifest_digest)));
    std::string config_digest = f.manifest.at("config").at("digest");
    f.config_text = strata::fuzz::read_file(f.layout / blob_path(config_digest));
    return f;
}

Fixture& fixture() {
    static Fixture f = make_fixture();
    return f;
}

// A blob of the layout written for one input, removed again afterwards
// unless the layout already had it (an input equal to a fixture blob).
class TempBlob {
public:
    TempBlob(const fs::path& layout, const std::string& data)
        : digest_(strata::sha256_digest(data)), path_(layout / blob_path(digest_)) {
        existed_ = fs::exists(path_);
        if (!existed_) strata::fuzz::write_file(path_, data);
    }
    ~TempBlob() {
        std::error_code ec;
        if (!existed_) fs::remove(path_, ec);
    }
    TempBlob(const TempBlob&) = delete;
    TempBlob& operator=(const TempBlob&) = delete;

    const std::string& digest() const { return digest_; }

private:
    std::string digest_;
    fs::path path_;
    bool existed_ = false;
};

la_ssize_t append_cb(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<std::string*>(self)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
}

void add_entry(struct archive* a, const std::string& name, const std::string& data,
               const char* symlink = nullptr) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, symlink != nullptr ? AE_IFLNK : AE_IFREG);
    archive_entry_set_perm(e, symlink != nullptr ? 0777 : 0644);
    archive_entry_set_mtime(e, 1'700'000'000, 0);
    if (symlink != nullptr) archive_entry_copy_symlink(e, symlink);
    archive_entry_set_size(e, symlink != nullptr ? 0 : static_cast<la_int64_t>(data.size()));
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0)) {
        finding("fuzz: cannot write docker-archive entry " + name);
    }
    archive_entry_free(e);
}

// A docker-archive around `manifest_json`, as described at the top.
std::string docker_archive(const Fixture& f, const std::string& manifest_json) {
    std::string out;
    struct archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_none(a);
    archive_write_open(a, &out, nullptr, append_cb, nullptr);

    add_entry(a, "manifest.json", manifest_json);
    std::string config_digest = f.manifest.at("config").at("digest");
    add_entry(a, blob_path(config_digest), f.config_text);
    add_entry(a, strata::digest_hex(config_digest) + ".json", f.config_text);
    Json config = Json::parse(f.config_text);
    const Json& layers = f.manifest.at("layers");
    const Json& diff_ids = config.at("rootfs").at("diff_ids");
    for (size_t i = 0; i < layers.size(); ++i) {
        std::string blob = blob_path(layers[i].at("digest"));
        add_entry(a, blob, "stand-in layer " + std::to_string(i) + "\n");
        std::string link = "../" + blob;
        add_entry(a, strata::digest_hex(diff_ids.at(i)) + "/layer.tar", "", link.c_str());
    }
    archive_write_close(a);
    archive_write_free(a);
    return out;
}

// The promises image_archive.h makes about a successfully opened archive.
void check_archive(strata::ImageArchive& archive) {
    const auto& images = archive.images();
    if (images.empty()) finding("ImageArchive::open returned no image");
    for (const strata::ImageManifest& m : images) {
        if (strata::sha256_digest(m.config_json) != m.config_digest) {
            finding("config_digest " + m.config_digest + " is not the digest of config_json");
        }
        std::string chain;
        for (const strata::ImageLayerRef& layer : m.layers) {
            if (layer.diff_id.empty()) continue;
            try {
                chain = strata::chain_id(chain, layer.diff_id);
            } catch (const strata::Error& e) {
                finding("chain_id refused diff_id '" + layer.diff_id + "': " + e.what());
            }
            try {
                auto src = archive.open_blob(layer.blob);
                char buf[4096];
                src->read(buf, sizeof buf);
            } catch (const strata::Error&) {
                // A stand-in or truncated blob may fail to stream; not a parser matter.
            }
        }
    }
}

// Writes the input where the mode puts it and returns the archive to open.
// `blobs` keeps per-input blobs alive until the archive has been read.
fs::path place_input(Fixture& f, const std::string& input,
                     std::vector<std::unique_ptr<TempBlob>>& blobs) {
    switch (kMode) {
        case kOciIndex:
            strata::fuzz::write_file(f.layout / "index.json", input);
            return f.layout;
        case kOciManifest: {
            blobs.push_back(std::make_unique<TempBlob>(f.layout, input));
            Json index = {
                {"schemaVersion", 2},
                {"manifests",
                 Json::array({{{"digest", blobs.back()->digest()}, {"size", input.size()}}})}};
            strata::fuzz::write_file(f.layout / "index.json", index.dump());
            return f.layout;
        }
        case kOciConfig: {
            blobs.push_back(std::make_unique<TempBlob>(f.layout, input));
            Json manifest = f.manifest;
            manifest["config"]["digest"] = blobs.back()->digest();
            manifest["config"]["size"] = input.size();
            std::string text = manifest.dump();
            blobs.push_back(std::make_unique<TempBlob>(f.layout, text));
            Json index = f.index;
            index["manifests"][0]["digest"] = blobs.back()->digest();
            index["manifests"][0]["size"] = text.size();
            strata::fuzz::write_file(f.layout / "index.json", index.dump());
            return f.layout;
        }
        case kDockerManifest:
            strata::fuzz::write_file(f.root / "docker.tar", docker_archive(f, input));
            return f.root / "docker.tar";
        case kImageTar:
            strata::fuzz::write_file(f.root / "image.tar", input);
            return f.root / "image.tar";
    }
    finding("unknown STRATA_FUZZ_IMAGE_MODE");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    fixture();
    return 0;
}

#if STRATA_FUZZ_IMAGE_MODE == 5
// Whole archives are tars: mutations keep their header checksums valid.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int /*seed*/) {
    return strata::fuzz::mutate_tar(data, size, max_size);
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Fixture& f = fixture();
    std::string input(reinterpret_cast<const char*>(data), size);
    std::vector<std::unique_ptr<TempBlob>> blobs;
    fs::path path = place_input(f, input, blobs);
    try {
        std::unique_ptr<strata::ImageArchive> archive = strata::ImageArchive::open(path);
        check_archive(*archive);
        strata::fuzz::verbose("opened " + archive->format() + " with " +
                              std::to_string(archive->images().size()) + " images");
    } catch (const strata::Error& e) {
        // Refusing a malformed document is the expected outcome.
        strata::fuzz::verbose(std::string("refused: ") + e.what());
    } catch (const std::exception& e) {
        finding(std::string("ImageArchive::open threw a non-strata exception: ") + e.what());
    }
    return 0;
}
