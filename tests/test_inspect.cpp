// Offline inspection: a copied catalog file answers on its own, read-only.
#define BOOST_TEST_MODULE inspect
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using namespace strata::test;
using nlohmann::json;

namespace {

struct Fixture {
    TempDir dir{"strata-inspect"};
    fs::path root = dir / "store";
    fs::path copy = dir / "copy" / "catalog.db";

    Fixture() {
        auto r = run_shell("cd " + dir.path().string() +
                           " && mkdir -p a/etc b/etc && echo one > a/etc/one && "
                           "printf 'twelve bytes' > b/etc/two && ln -s two b/etc/link && "
                           "tar -C a -cf a.tar . && tar -C b -cf b.tar .");
        BOOST_REQUIRE(r.exit_code == 0);
        BOOST_REQUIRE(run_strata(root, {"apply-diff", "base"}, (dir / "a.tar").string())
                          .exit_code == 0);
        BOOST_REQUIRE(run_strata(root, {"apply-diff", "--parent", "base", "top"},
                                 (dir / "b.tar").string())
                          .exit_code == 0);
        BOOST_REQUIRE(run_strata(root, {"create", "--rw", "--parent", "top", "sb"}).exit_code ==
                      0);
        fs::create_directories(copy.parent_path());
        fs::copy_file(root / "catalog.db", copy);
    }

    json offline(const std::vector<std::string>& args) {
        std::vector<std::string> full = args;
        full.push_back("--catalog");
        full.push_back(copy.string());
        full.push_back("--json");
        RunResult r = run_strata("", full);
        BOOST_REQUIRE_MESSAGE(r.exit_code == 0, args[0] + ": " + r.err);
        return json::parse(r.out);
    }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(copied_catalog_answers_without_the_store, Fixture) {
    std::string before = strata::test::read_file(copy);
    // The store itself goes away: only the copied file is left.
    fs::remove_all(root);

    json ls = offline({"ls"});
    BOOST_REQUIRE(ls.size() == 3u);
    BOOST_TEST(ls[0]["id"] == "base");
    BOOST_TEST(ls[0]["parent"].is_null());
    BOOST_TEST(ls[1]["parent"] == "base");
    BOOST_TEST(ls[2]["kind"] == "sandbox");
    BOOST_TEST(ls[1]["size"] == 12);

    json show = offline({"show", "sb"});
    BOOST_TEST((show["chain"] == json::array({"top", "base"})));
    BOOST_TEST(show["mount"]["refcount"] == 0);

    json files = offline({"files", "top"});
    std::vector<std::string> paths;
    for (const auto& f : files) paths.push_back(f["path"]);
    BOOST_TEST((paths == std::vector<std::string>{"/", "/etc", "/etc/two", "/etc/link"}));
    BOOST_TEST(files[3]["link_target"] == "two");

    json found = offline({"find", "/etc/two"});
    BOOST_REQUIRE(found.size() == 1u);
    BOOST_TEST(found[0]["layer"] == "top");
    BOOST_TEST(found[0]["size"] == 12);

    json du = offline({"du"});
    BOOST_TEST(du["total"] == 16);
    json stats = offline({"stats"});
    BOOST_TEST(stats["layers"] == 3);
    BOOST_TEST(stats["sandboxes"] == 1);

    RunResult none = run_strata("", {"find", "/nope", "--catalog", copy.string()});
    BOOST_TEST(none.exit_code == 1);
    BOOST_TEST(strata::test::read_file(copy) == before);  // never written
    BOOST_TEST(!fs::exists(root));      // and the store was not recreated
}

BOOST_FIXTURE_TEST_CASE(tree_and_dot_show_the_parent_links, Fixture) {
    RunResult tree = run_strata(root, {"tree"});
    BOOST_TEST(tree.exit_code == 0);
    BOOST_TEST(tree.out.find("base") == 0u, tree.out);
    BOOST_TEST(tree.out.find("\n  top") != std::string::npos, tree.out);
    BOOST_TEST(tree.out.find("\n    sb") != std::string::npos, tree.out);
    RunResult dot = run_strata(root, {"tree", "--dot"});
    BOOST_TEST(dot.out.find("\"top\" -> \"base\"") != std::string::npos, dot.out);
}

BOOST_AUTO_TEST_CASE(catalog_that_is_not_one_is_refused) {
    TempDir dir;
    std::ofstream(dir / "x.db") << "not sqlite";
    RunResult r = run_strata("", {"ls", "--catalog", (dir / "x.db").string()});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("strata: error: catalog ") == 0u, r.err);
    BOOST_TEST(r.err.find("not a SQLite database") != std::string::npos, r.err);
}
