// The image-archive reader on archives built here with GNU tar: "./" names,
// symlinks and hard links between entries, long names in pax and GNU form,
// legacy parent chains, nested OCI indexes with platforms; and broken ones,
// each refused with the message that names the archive, the document and the
// value: a missing layer, a config or manifest whose digest or size is wrong,
// diff_ids of the wrong count, malformed JSON, wrong types, an oversized
// document, link loops and links out of the archive.
#define BOOST_TEST_MODULE image_archive_crafted
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/archive_index.h"
#include "engine/error.h"
#include "engine/image_archive.h"
#include "tests/image_archive_util.h"

using namespace strata;
using namespace strata::test;
using nlohmann::json;

namespace {

void write_file(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string hex(const std::string& digest) {
    return digest.substr(7);
}

// Writes a small layer tar holding one file with `content` to `tar`; returns
// its diff_id as sha256sum computes it.
std::string make_layer(const fs::path& tar, const std::string& content) {
    TempDir src;
    write_file(src.path() / "file.txt", content);
    fs::create_directories(tar.parent_path());
    run("tar -cf " + shell_quote(tar.string()) + " -C " + shell_quote(src.path().string()) + " .");
    return sha256_of_output("cat " + shell_quote(tar.string()));
}

std::string config_json(const std::vector<std::string>& diff_ids) {
    return json{{"architecture", "amd64"},
                {"os", "linux"},
                {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
        .dump();
}

// A podman-like docker-archive: aaa/layer.tar, <d2>.tar with bbb/layer.tar a
// symlink to it, ccc/layer.tar a hard link of aaa/layer.tar, a config named
// by its digest, and a manifest listing the three through "./" and links.
class DockerArchive {
public:
    DockerArchive() : root_(tmp_.path() / "root"), tar_(tmp_.path() / "image.tar") {
        d1 = make_layer(root_ / "aaa/layer.tar", "first layer");
        d2 = make_layer(root_ / "scratch.tar", "second layer");
        fs::rename(root_ / "scratch.tar", root_ / (hex(d2) + ".tar"));
        fs::create_directories(root_ / "bbb");
        fs::create_symlink("../" + hex(d2) + ".tar", root_ / "bbb/layer.tar");
        fs::create_directories(root_ / "ccc");
        fs::create_hard_link(root_ / "aaa/layer.tar", root_ / "ccc/layer.tar");
        set_config(config_json({d1, d2, d1}));
        set_manifest({"aaa/layer.tar", "./bbb/layer.tar", "ccc/layer.tar"});
    }

    // Writes `text` as the config, named "<its digest>.json".
    void set_config(const std::string& text) {
        config_name = hex(sha256_of_output("printf '%s' " + shell_quote(text))) + ".json";
        write(config_name, text);
    }

    void set_manifest(const std::vector<std::string>& layers) {
        write("manifest.json",
              json::array(
                  {{{"Config", config_name}, {"RepoTags", {"crafted:1"}}, {"Layers", layers}}})
                  .dump());
    }

    void write(const std::string& rel, const std::string& content) {
        write_file(root_ / rel, content);
    }
    const fs::path& root() const { return root_; }

    fs::path pack(const std::string& format = "gnu") {
        run("tar --format=" + format + " -cf " + shell_quote(tar_.string()) + " -C " +
            shell_quote(root_.string()) + " .");
        return tar_;
    }

    // The message ImageArchive::open gives for the packed archive.
    std::string open_error() {
        fs::path tar = pack();
        return error_of([&] { ImageArchive::open(tar); });
    }
    std::string where() const { return "image archive " + tar_.string(); }

    std::string d1, d2, config_name;

private:
    TempDir tmp_;
    fs::path root_, tar_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(docker_archive_resolves_dot_slash_symlinks_and_hard_links) {
    DockerArchive crafted;
    fs::path tar = crafted.pack();
    std::string listing = run("tar -tvf " + shell_quote(tar.string()));
    BOOST_TEST(listing.find(" link to ") != std::string::npos);
    BOOST_TEST(listing.find("bbb/layer.tar -> ../" + hex(crafted.d2) + ".tar") !=
               std::string::npos);

    auto archive = ImageArchive::open(tar);
    BOOST_TEST(archive->format() == "docker-archive");
    const ImageManifest& m = archive->images().at(0);
    BOOST_TEST(m.name == "crafted:1");
    BOOST_TEST(m.config_digest == "sha256:" + crafted.config_name.substr(0, 64));
    BOOST_REQUIRE_EQUAL(m.layers.size(), 3u);
    BOOST_TEST(m.layers[1].blob == hex(crafted.d2) + ".tar");
    const std::string expected[] = {crafted.d1, crafted.d2, crafted.d1};
    for (size_t i = 0; i < 3; ++i) {
        BOOST_TEST(m.layers[i].diff_id == expected[i]);
        BOOST_TEST(m.layers[i].blob_digest == "");
        auto blob = archive->open_blob(m.layers[i].blob);
        BOOST_TEST(stream_digest(*blob) == expected[i]);
    }
}

BOOST_AUTO_TEST_CASE(long_names_in_pax_and_gnu_form_stream_the_same_way) {
    for (const char* format : {"pax", "gnu"}) {
        BOOST_TEST_CONTEXT(format) {
            DockerArchive crafted;
            std::string dir(150, 'd');
            std::string d3 = make_layer(crafted.root() / dir / "layer.tar", "third layer");
            crafted.set_config(config_json({crafted.d1, d3}));
            crafted.set_manifest({"aaa/layer.tar", dir + "/layer.tar"});
            fs::path tar = crafted.pack(format);

            auto archive = ImageArchive::open(tar);
            BOOST_TEST(archive->images().at(0).layers.at(1).blob == dir + "/layer.tar");
            auto pread = open_tar_index(tar, true);
            auto scan = open_tar_index(tar, false);
            auto a = pread->open_stream(dir + "/layer.tar");
            auto b = scan->open_stream(dir + "/layer.tar");
            BOOST_TEST(stream_digest(*a) == d3);
            BOOST_TEST(stream_digest(*b) == d3);
        }
    }
}

BOOST_AUTO_TEST_CASE(manifest_naming_a_missing_layer_is_refused) {
    DockerArchive crafted;
    crafted.set_manifest({"aaa/layer.tar", "nope/layer.tar", "ccc/layer.tar"});
    BOOST_TEST(crafted.open_error() ==
               crafted.where() +
                   ": manifest.json: Layers[1] 'nope/layer.tar' is not in the archive");
}

BOOST_AUTO_TEST_CASE(several_images_name_their_index_in_messages) {
    DockerArchive crafted;
    json one = {{"Config", crafted.config_name},
                {"Layers", {"aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"}}};
    json two = one;
    two["Layers"][2] = "gone.tar";
    crafted.write("manifest.json", json::array({one, two}).dump());
    BOOST_TEST(crafted.open_error() ==
               crafted.where() + ": manifest.json: [1].Layers[2] 'gone.tar' is not in the archive");

    crafted.write("manifest.json", json::array({one, one}).dump());
    auto archive = ImageArchive::open(crafted.pack());
    BOOST_TEST(archive->images().size() == 2u);
    BOOST_TEST(archive->images()[1].name == "");
}

BOOST_AUTO_TEST_CASE(config_whose_bytes_do_not_match_its_name_is_refused) {
    DockerArchive crafted;
    std::string changed = config_json({crafted.d1, crafted.d2, crafted.d1}) + " ";
    crafted.write(crafted.config_name, changed);
    std::string actual = sha256_of_output("printf '%s' " + shell_quote(changed));
    BOOST_TEST(crafted.open_error() == crafted.where() + ": manifest.json: Config '" +
                                           crafted.config_name + "' has digest " + actual +
                                           ", not the sha256:" + crafted.config_name.substr(0, 64) +
                                           " its name says");

    // The same for a config stored as an OCI blob.
    std::string blob = "blobs/sha256/" + std::string(64, 'a');
    crafted.write(blob, changed);
    crafted.write("manifest.json",
                  json::array({{{"Config", blob}, {"Layers", {"aaa/layer.tar"}}}}).dump());
    BOOST_TEST(crafted.open_error() ==
               crafted.where() + ": manifest.json: Config '" + blob + "' has digest " + actual +
                   ", not the sha256:" + std::string(64, 'a') + " its name says");
}

BOOST_AUTO_TEST_CASE(diff_ids_of_the_wrong_count_are_refused) {
    DockerArchive crafted;
    crafted.set_config(config_json({crafted.d1, crafted.d2}));
    crafted.set_manifest({"aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"});
    BOOST_TEST(crafted.open_error() ==
               crafted.where() + ": manifest.json: Layers lists 3 layers, " + "but config '" +
                   crafted.config_name + "' rootfs.diff_ids lists 2");
}

BOOST_AUTO_TEST_CASE(malformed_json_is_refused_naming_the_document) {
    DockerArchive crafted;
    std::string manifest = read_file(crafted.root() / "manifest.json");
    for (std::string text :
         {manifest.substr(0, manifest.size() / 2), std::string("\x01\x02 junk"), std::string("")}) {
        crafted.write("manifest.json", text);
        std::string prefix = crafted.where() + ": manifest.json: malformed JSON: ";
        BOOST_TEST(crafted.open_error().rfind(prefix, 0) == 0u, crafted.open_error());
    }

    DockerArchive broken_config;
    broken_config.set_config("{\"rootfs\": {\"diff_ids\": [");
    broken_config.set_manifest({"aaa/layer.tar"});
    std::string prefix =
        broken_config.where() + ": " + broken_config.config_name + ": malformed JSON: ";
    BOOST_TEST(broken_config.open_error().rfind(prefix, 0) == 0u, broken_config.open_error());
}

BOOST_AUTO_TEST_CASE(values_of_the_wrong_type_are_refused) {
    DockerArchive crafted;
    const std::string& c = crafted.config_name;
    struct Case {
        std::string manifest;
        std::string message;
    };
    const Case cases[] = {
        {R"({"Config": "x"})", "manifest.json: the document is object, not an array"},
        {"[]", "manifest.json: lists no images"},
        {"[7]", "manifest.json: the image entry is number, not an object"},
        {R"([{"Config": 42, "Layers": []}])", "manifest.json: Config is number, not a string"},
        {R"([{"Layers": []}])", "manifest.json: Config is missing"},
        {R"([{"Config": ")" + c + R"(", "Layers": "aaa/layer.tar"}])",
         "manifest.json: Layers is string, not an array"},
        {R"([{"Config": ")" + c + R"("}])", "manifest.json: Layers is missing"},
        {R"([{"Config": ")" + c + R"(", "Layers": ["aaa/layer.tar", 5, "ccc/layer.tar"]}])",
         "manifest.json: Layers[1] is number, not a string"},
        {R"([{"Config": ")" + c + R"(", "RepoTags": [1], )" +
             R"("Layers": ["aaa/layer.tar", "bbb/layer.tar", "aaa/layer.tar"]}])",
         "manifest.json: RepoTags[0] is number, not a string"},
    };
    for (const Case& k : cases) {
        crafted.write("manifest.json", k.manifest);
        BOOST_TEST(crafted.open_error() == crafted.where() + ": " + k.message);
    }

    const std::pair<std::string, std::string> configs[] = {
        {"[]", "the config is array, not an object"},
        {"{}", "the config has no rootfs"},
        {R"({"rootfs": {"diff_ids": {}}})", "rootfs.diff_ids is object, not an array"},
        {R"({"rootfs": {"type": "layers"}})", "rootfs.diff_ids is missing"},
        {R"({"rootfs": {"diff_ids": ["sha256:xyz"]}})",
         "rootfs.diff_ids[0] 'sha256:xyz' is not a sha256 digest"},
    };
    for (const auto& [config, message] : configs) {
        crafted.set_config(config);
        crafted.set_manifest({"aaa/layer.tar"});
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() + ": " + crafted.config_name + ": " + message);
    }
}

BOOST_AUTO_TEST_CASE(document_above_the_size_limit_is_refused) {
    DockerArchive crafted;
    crafted.write("manifest.json", "[" + std::string(kDocumentLimit, ' ') + "]");
    BOOST_TEST(crafted.open_error() == crafted.where() + ": manifest.json: is " +
                                           std::to_string(kDocumentLimit + 2) +
                                           " bytes, more than the limit of " +
                                           std::to_string(kDocumentLimit) + " for a document");
}

BOOST_AUTO_TEST_CASE(link_loops_and_links_out_of_the_archive_are_refused) {
    DockerArchive crafted;
    fs::create_directories(crafted.root() / "loop");
    fs::create_symlink("b", crafted.root() / "loop/a");
    fs::create_symlink("a", crafted.root() / "loop/b");
    fs::create_directories(crafted.root() / "evil");
    fs::create_symlink("../../../../../../etc/hostname", crafted.root() / "evil/layer.tar");
    fs::create_symlink("/aaa", crafted.root() / "abs");  // absolute: from the archive root

    crafted.set_manifest({"abs/layer.tar", "loop/a", "ccc/layer.tar"});
    BOOST_TEST(crafted.open_error() ==
               crafted.where() + ": 'loop/a': more than 40 links (a link loop?)");
    crafted.set_manifest({"evil/layer.tar", "bbb/layer.tar", "ccc/layer.tar"});
    BOOST_TEST(crafted.open_error() ==
               crafted.where() +
                   ": manifest.json: Layers[0] 'evil/layer.tar' is not in the archive");
    crafted.set_manifest({"abs/layer.tar", "bbb/layer.tar", "../aaa/layer.tar"});
    BOOST_TEST(crafted.open_error() ==
               crafted.where() +
                   ": manifest.json: Layers[2] '../aaa/layer.tar' is not in the archive");

    crafted.set_manifest({"abs/layer.tar", "bbb/layer.tar", "ccc/layer.tar"});
    // aaa/layer.tar and ccc/layer.tar are hard links; tar stores whichever it meets first.
    auto archive = ImageArchive::open(crafted.pack());
    const std::string blob = archive->images()[0].layers[0].blob;
    BOOST_TEST((blob == "aaa/layer.tar" || blob == "ccc/layer.tar"), blob);
    auto src = archive->open_blob("abs/layer.tar");
    BOOST_TEST(stream_digest(*src) == crafted.d1);
}

namespace {

// A legacy docker-archive: one directory per layer with `json` and layer.tar.
class LegacyArchive {
public:
    LegacyArchive() : root_(tmp_.path() / "root"), tar_(tmp_.path() / "legacy.tar") {}

    // Adds layer `id` with parent `parent` ("" for none); an empty `content`
    // makes a zero-byte layer.tar.
    void add(const std::string& id, const std::string& parent, const std::string& content) {
        json doc = {{"id", id}};
        if (!parent.empty()) doc["parent"] = parent;
        write_file(root_ / id / "json", doc.dump());
        if (content.empty()) {
            write_file(root_ / id / "layer.tar", "");
        } else {
            make_layer(root_ / id / "layer.tar", content);
        }
    }
    void write(const std::string& rel, const std::string& content) {
        write_file(root_ / rel, content);
    }

    fs::path pack() {
        run("tar -cf " + shell_quote(tar_.string()) + " -C " + shell_quote(root_.string()) + " .");
        return tar_;
    }
    std::string open_error() {
        fs::path tar = pack();
        return error_of([&] { ImageArchive::open(tar); });
    }
    std::string where() const { return "image archive " + tar_.string(); }

private:
    TempDir tmp_;
    fs::path root_, tar_;
};

std::vector<std::string> blobs(const ImageManifest& m) {
    std::vector<std::string> out;
    for (const auto& layer : m.layers) out.push_back(layer.blob);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(legacy_top_is_the_layer_no_one_has_as_parent) {
    LegacyArchive crafted;
    crafted.add("top", "mid", "top layer");
    crafted.add("base", "", "base layer");
    crafted.add("mid", "base", "");
    auto archive = ImageArchive::open(crafted.pack());
    BOOST_TEST(archive->format() == "docker-legacy");
    const ImageManifest& m = archive->images().at(0);
    BOOST_TEST(blobs(m) ==
               (std::vector<std::string>{"base/layer.tar", "mid/layer.tar", "top/layer.tar"}));
    BOOST_TEST(!m.layers[0].empty);
    BOOST_TEST(m.layers[1].empty);
    BOOST_TEST(m.name == "");
    BOOST_TEST(json::parse(m.config_json)["id"] == "top");
}

BOOST_AUTO_TEST_CASE(legacy_repositories_name_each_image) {
    LegacyArchive crafted;
    crafted.add("base", "", "base layer");
    crafted.add("one", "base", "one");
    crafted.add("two", "base", "two");
    crafted.write("repositories", R"({"zz/second": {"v2": "two"}, "aa/first": {"v1": "one"}})");
    auto archive = ImageArchive::open(crafted.pack());
    BOOST_REQUIRE_EQUAL(archive->images().size(), 2u);
    BOOST_TEST(archive->images()[0].name == "zz/second:v2");
    BOOST_TEST(blobs(archive->images()[0]) ==
               (std::vector<std::string>{"base/layer.tar", "two/layer.tar"}));
    BOOST_TEST(archive->images()[1].name == "aa/first:v1");
}

BOOST_AUTO_TEST_CASE(broken_legacy_chains_are_refused) {
    {
        LegacyArchive crafted;
        crafted.add("top", "ghost", "top");
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() + ": top/json: parent 'ghost' is not in the archive");
    }
    {
        LegacyArchive crafted;
        crafted.add("a", "", "a");
        crafted.add("b", "", "b");
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() + ": legacy layers: 2 layers are no layer's parent (a, b) and " +
                       "there is no repositories file naming the image");
    }
    {
        LegacyArchive crafted;
        crafted.add("a", "b", "a");
        crafted.add("b", "a", "b");
        BOOST_TEST(
            crafted.open_error() ==
            crafted.where() +
                ": legacy layers: every layer is some layer's parent (the parent links loop)");
        crafted.write("repositories", R"({"r": {"t": "a"}})");
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() + ": b/json: parent links loop back to a");
        crafted.write("repositories", R"({"r": {"t": "c"}})");
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() +
                       ": repositories: 'r:t' names layer c, which is not in the archive");
    }
    {
        LegacyArchive crafted;
        crafted.add("a", "", "a");
        crafted.write("a/json", R"({"id": "other"})");
        BOOST_TEST(crafted.open_error() ==
                   crafted.where() + ": a/json: id 'other' is not its directory's name");
    }
}

// Found by fuzzing: a header whose size is near 2^63 made the data-offset
// check overflow (undefined behaviour, caught by UBSan). It must be a plain
// refusal.
BOOST_AUTO_TEST_CASE(header_with_a_huge_size_is_refused_without_overflow) {
    std::filesystem::path input =
        std::filesystem::path(STRATA_SOURCE_DIR) /
        "tests/fuzz/corpus/image_tar/regress-huge-size.tar";
    std::string message;
    try {
        strata::ImageArchive::open(input);
    } catch (const strata::Error& e) {
        message = e.what();
    }
    BOOST_TEST(message.find("image archive " + input.string()) == 0u, message);
}
