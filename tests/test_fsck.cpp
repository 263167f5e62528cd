// fsck finds what is wrong and repairs only what is safe.
#define BOOST_TEST_MODULE fsck
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using namespace strata::test;
using nlohmann::json;

namespace {

struct Store {
    TempDir dir{"strata-fsck"};
    fs::path root = dir / "store";
    fs::path layer_dir;

    Store() {
        auto r = run_shell("cd " + dir.path().string() +
                           " && mkdir -p t/etc && echo hello > t/etc/a && echo world > t/etc/b"
                           " && ln -s a t/etc/link && tar -C t -cf t.tar .");
        BOOST_REQUIRE(r.exit_code == 0);
        BOOST_REQUIRE(run_strata(root, {"apply-diff", "base"}, (dir / "t.tar").string())
                          .exit_code == 0);
        auto meta = json::parse(run_strata(root, {"metadata", "base", "--json"}).out);
        layer_dir = meta["dir"].get<std::string>();
    }

    json fsck(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {"fsck", "--json"};
        args.insert(args.end(), extra.begin(), extra.end());
        RunResult r = run_strata(root, args);
        json j = json::parse(r.out);
        BOOST_TEST((r.exit_code == 0) == (j["clean"] == true));
        return j;
    }
};

std::string details(const json& j) {
    std::string out;
    for (const auto& p : j["problems"]) out += p["check"].get<std::string>() + ": " +
                                               p["detail"].get<std::string>() + "\n";
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(file_index_problems_are_reported) {
    Store s;
    BOOST_TEST(s.fsck({"--full"})["clean"] == true);

    fs::remove(s.layer_dir / "etc/a");
    fs::permissions(s.layer_dir / "etc/b", fs::perms::owner_all, fs::perm_options::replace);
    std::ofstream(s.layer_dir / "etc/stray") << "x";

    json quick = s.fsck();
    BOOST_TEST(quick["clean"] == false);
    std::string q = details(quick);
    BOOST_TEST(q.find("index: /etc/a: indexed but missing from the layer") != std::string::npos,
               q);
    BOOST_TEST(q.find("/etc/b") == std::string::npos, q);  // quick mode: size matches

    std::string f = details(s.fsck({"--full"}));
    BOOST_TEST(f.find("/etc/b: mode differs from the index") != std::string::npos, f);
    BOOST_TEST(f.find("/etc/stray: in the layer but not in the index") != std::string::npos, f);

    // Repair never invents layer content: the index problems remain.
    json rep = s.fsck({"--repair"});
    BOOST_TEST(rep["clean"] == false);
    BOOST_TEST(rep["repairs"].empty());
}

BOOST_AUTO_TEST_CASE(a_device_0_0_entry_is_indexed_as_the_whiteout_it_becomes) {
    Store s;
    std::string tar = (s.dir / "dev.tar").string();
    auto r = run_shell("python3 -c \"import tarfile, io\n"
                       "t = tarfile.open('" + tar + "', 'w')\n"
                       "i = tarfile.TarInfo('etc/a'); i.type = tarfile.CHRTYPE\n"
                       "i.devmajor = 0; i.devminor = 0; t.addfile(i); t.close()\"");
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out);
    RunResult a = run_strata(s.root, {"apply-diff", "--parent", "base", "top"}, tar);
    BOOST_REQUIRE_MESSAGE(a.exit_code == 0, a.err);
    json j = s.fsck({"--full"});
    BOOST_TEST(j["clean"] == true, details(j));
}

BOOST_AUTO_TEST_CASE(missing_native_layer_and_unknown_directories) {
    Store s;
    fs::create_directories(s.root / "layers" / "stray-native" / "x");
    // The open's recovery collects the unknown directory before fsck looks.
    json j = s.fsck();
    BOOST_TEST(j["clean"] == true, j.dump());
    BOOST_TEST(!fs::exists(s.root / "layers" / "stray-native"));

    fs::remove_all(s.layer_dir);
    j = s.fsck();
    BOOST_TEST(j["clean"] == false);
    BOOST_TEST(details(j).find("backend: native layer") != std::string::npos, details(j));
}

BOOST_AUTO_TEST_CASE(refcount_without_a_mount_is_reported) {
    Store s;
    BOOST_REQUIRE(run_strata(s.root, {"create", "--rw", "--parent", "base", "sb"}).exit_code == 0);
    std::string path = last_line(run_strata(s.root, {"get", "sb"}).out);
    // Someone unmounts behind strata's back.
    unmount_below(path);
    fs::remove_all(path);
    json j = s.fsck();
    BOOST_TEST(details(j).find("mount: refcount 1 but not mounted") != std::string::npos,
               details(j));
    BOOST_REQUIRE(run_strata(s.root, {"cleanup"}).exit_code == 0);
    BOOST_TEST(s.fsck()["clean"] == true);
}
