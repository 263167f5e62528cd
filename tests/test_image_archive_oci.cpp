// The image-archive reader on OCI layouts changed here from a real one
// (tzdata-oci-zstd.tar, extracted): nested indexes and platform choice, names
// from annotations, several images; and broken layouts, each refused with the
// message naming the document and the descriptor: a manifest or config whose
// digest or size differs from its descriptor, diff_ids of the wrong count, a
// missing blob, a missing or unknown oci-layout, unsupported digests.
#define BOOST_TEST_MODULE image_archive_oci
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/image_archive.h"
#include "tests/image_archive_util.h"

using namespace strata;
using namespace strata::test;
using nlohmann::json;

namespace {

const char kIndexType[] = "application/vnd.oci.image.index.v1+json";
const char kManifestType[] = "application/vnd.oci.image.manifest.v1+json";

// An extracted OCI layout that tests change blob by blob.
class Layout {
public:
    Layout() : dir_(tmp_.path() / "layout") {
        fs::create_directories(dir_);
        run("tar -xf " + shell_quote((shared_images() / "tzdata-oci-zstd.tar").string()) + " -C " +
            shell_quote(dir_.string()));
        json index = json::parse(read("index.json"));
        manifest = index["manifests"][0];
        config = json::parse(read(blob_path(manifest["digest"])))["config"];
    }

    std::string read(const std::string& rel) const {
        std::ifstream in(dir_ / rel, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    void write(const std::string& rel, const std::string& content) {
        std::ofstream out(dir_ / rel, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out.flush()) throw std::runtime_error("cannot write " + rel);
    }
    static std::string blob_path(const std::string& digest) {
        return "blobs/sha256/" + digest.substr(7);
    }

    // Stores `text` as a blob; returns its descriptor.
    json put(const std::string& text, const std::string& media_type) {
        std::string digest = sha256_digest(text);
        write(blob_path(digest), text);
        return {{"mediaType", media_type}, {"digest", digest}, {"size", text.size()}};
    }

    void set_index(const std::vector<json>& manifests) {
        json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
        for (const json& m : manifests) index["manifests"].push_back(m);
        write("index.json", index.dump());
    }

    // A copy of the original manifest keeping only its first `layers` layers
    // and a config that matches, stored; returns its descriptor.
    json variant(size_t layers) {
        json m = json::parse(read(blob_path(manifest["digest"])));
        json c = json::parse(read(blob_path(config["digest"])));
        m["layers"].erase(m["layers"].begin() + long(layers), m["layers"].end());
        auto& ids = c["rootfs"]["diff_ids"];
        ids.erase(ids.begin() + long(layers), ids.end());
        m["config"] = put(c.dump(), config["mediaType"]);
        return put(m.dump(), kManifestType);
    }

    std::string open_error() const {
        return error_of([&] { ImageArchive::open(dir_); });
    }
    std::string where() const { return "image archive " + dir_.string(); }
    const fs::path& dir() const { return dir_; }

    json manifest;  // index.json's descriptor of the image manifest
    json config;    // the manifest's config descriptor

private:
    TempDir tmp_;
    fs::path dir_;
};

json with_platform(json d, const std::string& arch) {
    d["platform"] = {{"os", "linux"}, {"architecture", arch}};
    return d;
}

}  // namespace

BOOST_AUTO_TEST_CASE(nested_index_picks_linux_amd64_and_names_the_image) {
    Layout layout;
    json arm = with_platform(layout.variant(1), "arm64");
    json amd = with_platform(layout.manifest, "amd64");
    json nested = layout.put(
        json{{"schemaVersion", 2}, {"manifests", json::array({arm, amd})}}.dump(), kIndexType);
    nested["annotations"] = {{"org.opencontainers.image.ref.name", "crafted:nested"}};
    layout.set_index({nested});

    auto archive = ImageArchive::open(layout.dir());
    BOOST_TEST(archive->format() == "oci-layout");
    BOOST_REQUIRE_EQUAL(archive->images().size(), 1u);
    const ImageManifest& m = archive->images()[0];
    BOOST_TEST(m.name == "crafted:nested");
    BOOST_TEST(m.layers.size() == 3u);
    BOOST_TEST(m.config_digest == layout.config["digest"]);
    BOOST_TEST(m.layers[2].media_type == "application/vnd.oci.image.layer.v1.tar+zstd");

    // Without linux/amd64 the first entry is taken.
    json riscv = with_platform(layout.manifest, "riscv64");
    layout.set_index({layout.put(
        json{{"schemaVersion", 2}, {"manifests", json::array({arm, riscv})}}.dump(), kIndexType)});
    BOOST_TEST(ImageArchive::open(layout.dir())->images()[0].layers.size() == 1u);
}

BOOST_AUTO_TEST_CASE(index_json_entries_are_images_unless_all_carry_a_platform) {
    Layout layout;
    json one = layout.variant(1);
    one["annotations"] = {{"org.opencontainers.image.ref.name", "latest"},
                          {"io.containerd.image.name", "example.org/one:latest"}};
    json three = layout.manifest;
    three["annotations"] = {{"org.opencontainers.image.ref.name", "three"}};
    layout.set_index({one, three});
    auto archive = ImageArchive::open(layout.dir());
    BOOST_REQUIRE_EQUAL(archive->images().size(), 2u);
    BOOST_TEST(archive->images()[0].name == "example.org/one:latest");
    BOOST_TEST(archive->images()[0].layers.size() == 1u);
    BOOST_TEST(archive->images()[1].name == "three");
    BOOST_TEST(archive->images()[1].layers.size() == 3u);

    layout.set_index({with_platform(one, "arm64"), with_platform(three, "amd64")});
    archive = ImageArchive::open(layout.dir());
    BOOST_REQUIRE_EQUAL(archive->images().size(), 1u);
    BOOST_TEST(archive->images()[0].name == "three");
}

BOOST_AUTO_TEST_CASE(manifest_differing_from_its_descriptor_is_refused) {
    Layout layout;
    std::string path = Layout::blob_path(layout.manifest["digest"]);
    std::string text = layout.read(path);
    std::string changed = text;
    changed[changed.find("\"schemaVersion\":2")] = ' ';
    layout.write(path, changed);
    BOOST_TEST(layout.open_error() == layout.where() + ": index.json: manifests[0]: " + path +
                                          " has digest " + sha256_digest(changed) +
                                          ", not the descriptor's " +
                                          layout.manifest["digest"].get<std::string>());

    layout.write(path, text + "\n");
    BOOST_TEST(layout.open_error() == layout.where() + ": index.json: manifests[0] " +
                                          layout.manifest["digest"].get<std::string>() + " says " +
                                          std::to_string(text.size()) + " bytes, but " + path +
                                          " has " + std::to_string(text.size() + 1));
}

BOOST_AUTO_TEST_CASE(config_differing_from_its_descriptor_is_refused) {
    Layout layout;
    std::string path = Layout::blob_path(layout.config["digest"]);
    std::string changed = layout.read(path);
    changed[changed.find('{')] = ' ';
    layout.write(path, changed);
    BOOST_TEST(layout.open_error() ==
               layout.where() + ": " + Layout::blob_path(layout.manifest["digest"]) +
                   ": config: " + path + " has digest " + sha256_digest(changed) +
                   ", not the descriptor's " + layout.config["digest"].get<std::string>());
}

BOOST_AUTO_TEST_CASE(diff_ids_of_the_wrong_count_are_refused) {
    Layout layout;
    json m = json::parse(layout.read(Layout::blob_path(layout.manifest["digest"])));
    json c = json::parse(layout.read(Layout::blob_path(layout.config["digest"])));
    c["rootfs"]["diff_ids"].erase(c["rootfs"]["diff_ids"].begin());
    m["config"] = layout.put(c.dump(), layout.config["mediaType"]);
    json d = layout.put(m.dump(), kManifestType);
    layout.set_index({d});
    BOOST_TEST(layout.open_error() == layout.where() + ": " + Layout::blob_path(d["digest"]) +
                                          ": layers lists 3 layers, but config '" +
                                          Layout::blob_path(m["config"]["digest"]) +
                                          "' rootfs.diff_ids lists 2");
}

BOOST_AUTO_TEST_CASE(missing_blobs_and_layout_files_are_refused) {
    Layout layout;
    json m = json::parse(layout.read(Layout::blob_path(layout.manifest["digest"])));
    std::string layer = m["layers"][2]["digest"];
    fs::remove(layout.dir() / Layout::blob_path(layer));
    BOOST_TEST(layout.open_error() == layout.where() + ": " +
                                          Layout::blob_path(layout.manifest["digest"]) +
                                          ": layers[2] " + layer + " is not in the archive (no " +
                                          Layout::blob_path(layer) + ")");

    layout.write("oci-layout", R"({"imageLayoutVersion": "2.0.0"})");
    BOOST_TEST(layout.open_error() ==
               layout.where() +
                   ": oci-layout: imageLayoutVersion '2.0.0' is not 1.x, the version strata reads");
    fs::remove(layout.dir() / "oci-layout");
    BOOST_TEST(layout.open_error() ==
               layout.where() +
                   ": oci-layout: is missing (an OCI layout has it beside index.json)");
}

BOOST_AUTO_TEST_CASE(malformed_index_json_is_refused) {
    Layout layout;
    const std::pair<std::string, std::string> cases[] = {
        {R"({"manifests": [)", "index.json: malformed JSON: "},
        {R"({"schemaVersion": 2, "manifests": null})", "index.json: manifests lists no image"},
        {R"({"manifests": {}})", "index.json: manifests is object, not an array"},
        {R"({"manifests": [{"digest": 5}]})",
         "index.json: manifests[0].digest is number, not a string"},
        {R"({"manifests": [{"digest": "sha512:ab"}]})",
         "index.json: manifests[0].digest 'sha512:ab' uses sha512; only sha256 is supported"},
        {R"({"manifests": [{"digest": "sha256:AB"}]})",
         "index.json: manifests[0].digest 'sha256:AB' is not a sha256 digest"},
        {R"({"manifests": [{"mediaType": "text/plain", "digest": "sha256:)" + std::string(64, '0') +
             R"("}]})",
         "index.json: manifests[0] sha256:" + std::string(64, '0') +
             " is not in the archive (no blobs/sha256/" + std::string(64, '0') + ")"},
    };
    for (const auto& [text, message] : cases) {
        layout.write("index.json", text);
        std::string error = layout.open_error();
        BOOST_TEST(error.rfind(layout.where() + ": " + message, 0) == 0u, error);
    }

    json odd = layout.manifest;
    odd["mediaType"] = "text/plain";
    layout.set_index({odd});
    BOOST_TEST(layout.open_error() ==
               layout.where() + ": index.json: manifests[0] has media type " +
                   "'text/plain', which is neither an image manifest nor " + "an index");
}

BOOST_AUTO_TEST_CASE(changed_layout_packed_as_a_tar_reads_the_same) {
    Layout layout;
    json nested =
        layout.put(json{{"schemaVersion", 2},
                        {"manifests", json::array({with_platform(layout.manifest, "amd64")})}}
                       .dump(),
                   kIndexType);
    layout.set_index({nested});
    fs::path tar = layout.dir().parent_path() / "packed.tar";
    run("tar -cf " + shell_quote(tar.string()) + " -C " + shell_quote(layout.dir().string()) +
        " .");
    auto a = ImageArchive::open(tar);
    auto b = ImageArchive::open(shared_images() / "tzdata-oci-zstd.tar");
    BOOST_TEST(a->format() == "oci-archive");
    BOOST_TEST(a->images()[0].config_json == b->images()[0].config_json);
    for (const auto& layer : a->images()[0].layers) {
        auto src = a->open_blob(layer.blob);
        BOOST_TEST(stream_digest(*src) == layer.blob_digest);
    }
}
