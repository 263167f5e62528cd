// Several processes on one store: a randomized soak with kills, and exact
// refcounts under concurrent get/put.
#define BOOST_TEST_MODULE soak
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "engine/digest.h"
#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using namespace strata::test;

namespace {

constexpr int kKills = 300;
constexpr int kWorkers = 3;

std::string must(const fs::path& root, const std::vector<std::string>& args,
                 const std::string& in = "") {
    RunResult r = run_strata(root, args, in);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, args[0] + ": " + r.err);
    return r.out;
}

std::vector<std::string> random_op(std::mt19937& rng, const std::string& tar) {
    std::uniform_int_distribution<int> pick(0, 7), slot(0, 3);
    std::string n = std::to_string(slot(rng));
    switch (pick(rng)) {
        case 0: return {"create", "--parent", "base", "l" + n};
        case 1: return {"remove", "l" + n};
        case 2: return {"create", "--rw", "--parent", "base", "s" + n};
        case 3: return {"get", "s" + n};
        case 4: return {"put", "s" + n};
        case 5: return {"apply-diff", "--parent", "base", "a" + n};
        case 6: return {"remove", "a" + n};
        default: return {"remove", "s" + n};
    }
    (void)tar;
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_kills_never_break_the_store) {
    TempDir dir("strata-soak");
    fs::path root = dir / "store";
    std::string tar = (dir / "layer.tar").string();
    auto mk = run_shell("mkdir -p " + (dir / "src/etc").string() + " && seq 1 2000 > " +
                        (dir / "src/etc/data").string() + " && tar -C " + (dir / "src").string() +
                        " -cf " + tar + " .");
    BOOST_REQUIRE(mk.exit_code == 0);
    must(root, {"apply-diff", "base"}, tar);
    std::string base_digest = strata::sha256_digest(must(root, {"diff", "base"}));

    std::mt19937 rng(20261204);
    std::uniform_int_distribution<int> delay_us(0, 40000);
    int kills = 0, finished = 0, rounds = 0;
    while (kills < kKills) {
        ++rounds;
        std::vector<int> pids;
        for (int w = 0; w < kWorkers; ++w) {
            auto op = random_op(rng, tar);
            pids.push_back(spawn_strata(root, op, op[0] == "apply-diff" ? tar : ""));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
        int victim = pids[std::uniform_int_distribution<int>(0, kWorkers - 1)(rng)];
        ::kill(victim, SIGKILL);
        for (int pid : pids) {
            int code = wait_exit(pid);
            if (pid == victim && code == 128 + SIGKILL) ++kills;
            if (code < 128) ++finished;
        }

        // Invariants after each kill: recovery makes fsck clean, every
        // layer is ready, and the committed base layer is untouched.
        RunResult f = run_strata(root, {"fsck", "--json"});
        auto j = nlohmann::json::parse(f.out, nullptr, false);
        BOOST_REQUIRE_MESSAGE(f.exit_code == 0 && j.is_object() && j["clean"] == true,
                              "round " << rounds << ": " << f.out << f.err);
        auto ls = nlohmann::json::parse(must(root, {"ls", "--json"}));
        for (const auto& l : ls) BOOST_REQUIRE(l["state"] == "ready");
        BOOST_REQUIRE(strata::sha256_digest(must(root, {"diff", "base"})) == base_digest);
    }
    BOOST_TEST_MESSAGE("soak: " << rounds << " rounds, " << kills << " kills, " << finished
                                << " operations finished");
    BOOST_TEST(kills >= kKills);
    must(root, {"cleanup"});
}

BOOST_AUTO_TEST_CASE(refcounts_stay_exact_under_eight_processes) {
    TempDir dir("strata-refs");
    fs::path root = dir / "store";
    must(root, {"create", "base"});
    must(root, {"create", "--rw", "--parent", "base", "sb"});
    constexpr int kProcs = 8, kEach = 5;

    auto storm = [&](const char* verb) {
        std::vector<int> pids;
        for (int p = 0; p < kProcs; ++p) {
            int pid = ::fork();
            if (pid == 0) {
                for (int i = 0; i < kEach; ++i) {
                    if (wait_exit(spawn_strata(root, {verb, "sb"})) != 0) ::_exit(1);
                }
                ::_exit(0);
            }
            pids.push_back(pid);
        }
        for (int pid : pids) BOOST_TEST(wait_exit(pid) == 0);
    };

    storm("get");
    auto show = nlohmann::json::parse(must(root, {"show", "sb", "--json"}));
    BOOST_TEST(show["mount"]["refcount"] == kProcs * kEach);
    storm("put");
    show = nlohmann::json::parse(must(root, {"show", "sb", "--json"}));
    BOOST_TEST(show["mount"]["refcount"] == 0);
    RunResult f = run_strata(root, {"fsck", "--json"});
    BOOST_TEST(f.exit_code == 0, f.out);
}

BOOST_AUTO_TEST_CASE(a_new_store_opened_by_several_processes_at_once) {
    for (int round = 0; round < 8; ++round) {
        TempDir dir("strata-first-open");
        fs::path root = round % 2 ? dir / "store" : dir.path();  // missing, or empty
        std::vector<int> pids;
        for (int p = 0; p < 4; ++p) pids.push_back(spawn_strata(root, {"stats", "--json"}));
        for (int pid : pids) BOOST_TEST(wait_exit(pid) == 0, "round " << round);
        auto stats = nlohmann::json::parse(must(root, {"stats", "--json"}));
        BOOST_TEST(stats["schema_version"] == 1);
    }
}

BOOST_AUTO_TEST_CASE(the_same_image_imported_twice_at_once) {
    TempDir dir("strata-twin-import");
    fs::path root = dir / "store";
    std::string archive = std::string(STRATA_SOURCE_DIR) + "/tests/data/tzdata-oci-zstd.tar";
    must(root, {"stats"});
    int a = spawn_strata(root, {"import", archive, "--name", "a"});
    int b = spawn_strata(root, {"import", archive, "--name", "b"});
    BOOST_TEST(wait_exit(a) == 0);
    BOOST_TEST(wait_exit(b) == 0);
    auto ls = nlohmann::json::parse(must(root, {"ls", "--json"}));
    BOOST_TEST(ls.size() == 3u);
    const std::string top = "bb9e347aa16c15628cc823bb0244c07e662a3c53ed2ab7c44b3b69cc6d005462";
    BOOST_TEST(run_strata(root, {"exists", top}).exit_code == 0);
    RunResult f = run_strata(root, {"fsck", "--json"});
    BOOST_TEST(f.exit_code == 0, f.out);
}
