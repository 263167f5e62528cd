// The image-archive reader on the real archives of the shared fixtures: every
// archive opens with the layout, layers and names it has; diff_ids and blob
// digests agree with what sha256sum, zcat and zstdcat compute from the same
// bytes; an OCI layout directory, compressed outer tars and the rescanning
// reader give the same answers; a bare layer tar is refused; chain ids match
// a hand computation. Broken and crafted archives are in
// test_image_archive_crafted.cpp.
#define BOOST_TEST_MODULE image_archive
#include <boost/test/unit_test.hpp>
#include <map>
#include <set>

#include "engine/archive_index.h"
#include "engine/error.h"
#include "engine/image_archive.h"
#include "tests/image_archive_util.h"

using namespace strata;
using namespace strata::test;

namespace {

struct Fixture {
    const char* file;  // relative to the images folder
    const char* format;
    size_t layers;
    const char* name;
};

const Fixture kFixtures[] = {
    {"bookworm-oci-gzip.tar", "oci-archive", 3, "localhost/bookworm:layered"},
    {"tzdata-docker.tar", "docker-archive", 3, "localhost/tzdata:l3"},
    {"tzdata-oci-gzip.tar", "oci-archive", 3, ""},
    {"tzdata-oci-zstd.tar", "oci-archive", 3, ""},
    {"public/cimage-almostempty.tar", "docker-archive", 1, "emptyimage:latest"},
    {"public/ggcr-hello-world-v25.tar", "docker-archive", 1, ""},
    {"public/ggcr-overwritten_file.tar", "docker-archive", 3,
     "bazel/pkg/v1/mutate:overwritten_file"},
    {"public/ggcr-test_image_1.tar", "docker-archive", 1, "bazel/v1/tarball:test_image_1"},
    {"public/ggcr-whiteout_image.tar", "docker-archive", 3, "bazel/pkg/v1/mutate:whiteout_image"},
    {"public/moby-emptyLayer.tar", "docker-legacy", 3, "matthughes/library-centos:6-2015.03.20"},
};
const char kBareLayer[] = "public/moby-xattr-layer.tar";

std::vector<std::string> diff_ids(const ImageManifest& m) {
    std::vector<std::string> out;
    for (const auto& layer : m.layers) out.push_back(layer.diff_id);
    return out;
}

// Checks every layer of `archive` against digests computed from the bytes
// `extract_command(blob)` prints.
template <class Extract>
void check_layers_against_outside(ImageArchive& archive, Extract extract_command) {
    TempDir scratch;
    for (const ImageLayerRef& layer : archive.images().at(0).layers) {
        BOOST_TEST_CONTEXT("layer " << layer.blob) {
            OutsideDigests outside = outside_digests(extract_command(layer.blob), scratch.path());
            if (!layer.blob_digest.empty()) BOOST_TEST(layer.blob_digest == outside.raw);
            if (!layer.diff_id.empty()) BOOST_TEST(layer.diff_id == outside.uncompressed);
            BOOST_TEST(layer.empty == (outside.size == 0));

            auto raw = archive.open_blob(layer.blob);
            BOOST_TEST(stream_digest(*raw) == outside.raw);
            if (!layer.diff_id.empty()) {
                auto again = archive.open_blob(layer.blob);
                BOOST_TEST(uncompressed_digest(*again) == layer.diff_id);
            }
        }
    }
}

auto tar_extract(const fs::path& archive) {
    return [archive](const std::string& blob) {
        return "tar -xOf " + shell_quote(archive.string()) + " " + shell_quote(blob);
    };
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_archive_of_the_fixtures_is_covered) {
    std::set<std::string> known = {kBareLayer};
    for (const Fixture& f : kFixtures) known.insert(f.file);
    std::set<std::string> found;
    for (const char* dir : {"", "public"}) {
        for (const auto& e : fs::directory_iterator(shared_images() / dir)) {
            if (e.path().extension() == ".tar") {
                found.insert((fs::path(dir) / e.path().filename()).relative_path().string());
            }
        }
    }
    BOOST_TEST(found == known, "fixture archives and the test table differ");
}

BOOST_AUTO_TEST_CASE(fixtures_open_with_their_layout_layers_and_name) {
    for (const Fixture& f : kFixtures) {
        BOOST_TEST_CONTEXT(f.file) {
            auto archive = ImageArchive::open(shared_images() / f.file);
            BOOST_TEST(archive->format() == f.format);
            BOOST_REQUIRE_EQUAL(archive->images().size(), 1u);
            const ImageManifest& m = archive->images()[0];
            BOOST_TEST(m.layers.size() == f.layers);
            BOOST_TEST(m.name == f.name);
            BOOST_TEST(m.config_digest == sha256_digest(m.config_json));
            bool legacy = std::string(f.format) == "docker-legacy";
            for (const auto& layer : m.layers) BOOST_TEST(layer.diff_id.empty() == legacy);
        }
    }
}

BOOST_AUTO_TEST_CASE(diff_ids_and_blob_digests_match_outside_tools) {
    for (const Fixture& f : kFixtures) {
        BOOST_TEST_CONTEXT(f.file) {
            fs::path path = shared_images() / f.file;
            auto archive = ImageArchive::open(path);
            check_layers_against_outside(*archive, tar_extract(path));
        }
    }
}

BOOST_AUTO_TEST_CASE(oci_layers_carry_descriptor_digests_and_media_types) {
    auto archive = ImageArchive::open(shared_images() / "tzdata-oci-zstd.tar");
    for (const auto& layer : archive->images()[0].layers) {
        BOOST_TEST(layer.blob == "blobs/sha256/" + layer.blob_digest.substr(7));
        BOOST_TEST(layer.media_type == "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    auto docker = ImageArchive::open(shared_images() / "tzdata-docker.tar");
    for (const auto& layer : docker->images()[0].layers) {
        BOOST_TEST(layer.blob_digest == "");
        BOOST_TEST(layer.media_type == "");
    }
}

BOOST_AUTO_TEST_CASE(one_image_in_three_layouts_has_one_config_and_diff_ids) {
    auto docker = ImageArchive::open(shared_images() / "tzdata-docker.tar");
    auto gzip = ImageArchive::open(shared_images() / "tzdata-oci-gzip.tar");
    auto zstd = ImageArchive::open(shared_images() / "tzdata-oci-zstd.tar");
    const std::string config =
        "sha256:a2e4e392823938f447a3d19018489a208a0eb7673b0a4a62f8a52c1dfb97cfd8";
    for (auto* a : {docker.get(), gzip.get(), zstd.get()}) {
        BOOST_TEST(a->images()[0].config_digest == config);
        BOOST_TEST(diff_ids(a->images()[0]) == diff_ids(docker->images()[0]));
    }
    // podman names each layer file by its diff_id.
    for (const auto& layer : docker->images()[0].layers) {
        BOOST_TEST(layer.blob == layer.diff_id.substr(7) + ".tar");
    }
}

BOOST_AUTO_TEST_CASE(docker25_archive_is_read_through_manifest_json) {
    auto archive = ImageArchive::open(shared_images() / "public/ggcr-hello-world-v25.tar");
    BOOST_TEST(archive->format() == "docker-archive");
    const ImageManifest& m = archive->images()[0];
    const std::string hex = "12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43";
    BOOST_TEST(m.config_digest ==
               "sha256:ee301c921b8aadc002973b2e0c3da17d701dcd994b606769a7e6eaa100b81d44");
    BOOST_TEST(m.layers.at(0).blob == "blobs/sha256/" + hex);
    BOOST_TEST(m.layers.at(0).blob_digest == "sha256:" + hex);
    BOOST_TEST(m.layers.at(0).media_type == "application/vnd.oci.image.layer.v1.tar");
}

BOOST_AUTO_TEST_CASE(legacy_archive_orders_layers_by_parent_links) {
    fs::path path = shared_images() / "public/moby-emptyLayer.tar";
    auto archive = ImageArchive::open(path);
    const ImageManifest& m = archive->images().at(0);
    const char* order[] = {"17d1436ef796af2fc2210cc37c4672e5aa1b62cb08ac4b95dd15372321105a66",
                           "9c7cb910d84346a3fbf3cc2be046f44bf0af7f11eb8db2ef1f45e93c1202faac",
                           "25445a0fc5025c3917a0cd6e307d92322540e0da691614312ddea22511b71513"};
    BOOST_REQUIRE_EQUAL(m.layers.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        BOOST_TEST(m.layers[i].blob == std::string(order[i]) + "/layer.tar");
        BOOST_TEST(m.layers[i].diff_id == "");
        BOOST_TEST(m.layers[i].empty == (i == 1));
    }
    std::string top_json =
        run("tar -xOf " + shell_quote(path.string()) + " " + std::string(order[2]) + "/json");
    BOOST_TEST(m.config_json == top_json);
    BOOST_TEST(m.config_digest == sha256_digest(top_json));
}

BOOST_AUTO_TEST_CASE(bare_layer_tar_is_refused_with_a_hint) {
    fs::path path = shared_images() / kBareLayer;
    BOOST_TEST(error_of([&] { ImageArchive::open(path); }) ==
               "image archive " + path.string() +
                   ": not an image archive (no manifest.json, index.json or legacy layer json); "
                   "a single layer tar can be applied with apply-diff");
}

BOOST_AUTO_TEST_CASE(missing_archive_and_missing_blob_are_errors) {
    TempDir tmp;
    fs::path nowhere = tmp.path() / "absent.tar";
    BOOST_TEST(error_of([&] { ImageArchive::open(nowhere); }) ==
               "image archive " + nowhere.string() + ": cannot open: No such file or directory");
    fs::path path = shared_images() / "tzdata-docker.tar";
    auto archive = ImageArchive::open(path);
    BOOST_TEST(error_of([&] { archive->open_blob("no/such.tar"); }) ==
               "image archive " + path.string() + ": blob 'no/such.tar' is not in the archive");
}

BOOST_AUTO_TEST_CASE(oci_layout_directory_reads_like_its_tar) {
    TempDir tmp;
    fs::path tar = shared_images() / "tzdata-oci-gzip.tar";
    fs::path dir = tmp.path() / "layout";
    fs::create_directory(dir);
    run("tar -xf " + shell_quote(tar.string()) + " -C " + shell_quote(dir.string()));

    auto from_dir = ImageArchive::open(dir);
    auto from_tar = ImageArchive::open(tar);
    BOOST_TEST(from_dir->format() == "oci-layout");
    const ImageManifest& a = from_dir->images().at(0);
    const ImageManifest& b = from_tar->images().at(0);
    BOOST_TEST(a.config_json == b.config_json);
    BOOST_REQUIRE_EQUAL(a.layers.size(), b.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i) {
        BOOST_TEST(a.layers[i].blob == b.layers[i].blob);
        BOOST_TEST(a.layers[i].blob_digest == b.layers[i].blob_digest);
        BOOST_TEST(a.layers[i].diff_id == b.layers[i].diff_id);
        BOOST_TEST(a.layers[i].media_type == b.layers[i].media_type);
    }
    check_layers_against_outside(*from_dir, [&](const std::string& blob) {
        return "cat " + shell_quote((dir / blob).string());
    });
}

BOOST_AUTO_TEST_CASE(compressed_outer_tars_are_scanned) {
    TempDir tmp;
    struct Case {
        const char* file;
        const char* tool;
    };
    for (Case c :
         {Case{"tzdata-oci-zstd.tar", "gzip"}, Case{"public/ggcr-whiteout_image.tar", "zstd"},
          Case{"public/moby-emptyLayer.tar", "gzip"}}) {
        BOOST_TEST_CONTEXT(c.file << " through " << c.tool) {
            fs::path plain = shared_images() / c.file;
            fs::path packed = tmp.path() / (fs::path(c.file).filename().string() + ".packed");
            run(std::string(c.tool) + " -c " + shell_quote(plain.string()) + " > " +
                shell_quote(packed.string()));
            auto a = ImageArchive::open(packed);
            auto b = ImageArchive::open(plain);
            BOOST_TEST(a->format() == b->format());
            BOOST_TEST(a->images()[0].config_json == b->images()[0].config_json);
            BOOST_TEST(diff_ids(a->images()[0]) == diff_ids(b->images()[0]));
            check_layers_against_outside(*a, tar_extract(plain));
        }
    }
}

BOOST_AUTO_TEST_CASE(rescanning_reader_matches_pread_and_resolves_podman_links) {
    fs::path path = shared_images() / "tzdata-docker.tar";
    auto pread = open_tar_index(path, true);
    auto scan = open_tar_index(path, false);
    BOOST_TEST(pread->names() == scan->names());
    size_t links = 0;
    for (const std::string& name : pread->names()) {
        BOOST_TEST_CONTEXT(name) {
            auto entry = pread->find(name);
            BOOST_REQUIRE(entry);
            if (entry->name != name) ++links;
            auto a = pread->open_stream(name);
            auto b = scan->open_stream(name);
            BOOST_TEST(stream_digest(*a) == stream_digest(*b));
        }
    }
    BOOST_TEST(links == 3u);
    auto link =
        pread->find("./f35ee6f66b4a46cf6e36e3b98024135a363c0edf1d62f796709dc49f6bd0f8e4/layer.tar");
    BOOST_REQUIRE(link);
    BOOST_TEST(link->name ==
               "2c348657ad94f5057f7b6df9e0d11d25585c347207350b15ffcac4a6d36cbd30.tar");
    BOOST_TEST(link->size == 16868864u);
}

BOOST_AUTO_TEST_CASE(chain_id_matches_a_hand_computation) {
    auto archive = ImageArchive::open(shared_images() / "tzdata-docker.tar");
    std::vector<std::string> ids = diff_ids(archive->images()[0]);
    BOOST_TEST(chain_id("", ids[0]) == ids[0]);

    std::string c1 = sha256_of_output("printf '%s' " + shell_quote(ids[0] + " " + ids[1]));
    BOOST_TEST(chain_id(ids[0], ids[1]) == c1);
    std::string c2 = sha256_of_output("printf '%s' " + shell_quote(c1 + " " + ids[2]));
    BOOST_TEST(chain_id(c1, ids[2]) == c2);
    BOOST_TEST(c2 != c1);

    BOOST_CHECK_THROW(chain_id("", "sha256:nothex"), Error);
    BOOST_CHECK_THROW(chain_id("garbage", ids[0]), Error);
}
