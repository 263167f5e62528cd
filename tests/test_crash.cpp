// Crash and fault matrices through the real binary: every mutating verb is
// killed at each crash point on its path, or has each native call it makes
// fail, and the store must come back consistent: fsck clean, every layer
// that was ready before present with identical content, nothing unknown in
// the backend, and the interrupted operation either done or without trace.
#define BOOST_TEST_MODULE crash
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/digest.h"
#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using strata::test::RunResult;
using strata::test::run_shell;
using strata::test::run_strata;
using strata::test::TempDir;

namespace {

struct Op {
    std::string name;
    std::vector<std::string> args;
    std::string stdin_file;          // "" or a file made by the fixture
    bool needs_mount = false;        // `sb` is mounted before the op runs
    std::vector<std::string> points;  // crash points on its path
    std::vector<std::string> calls;   // native calls it makes
};

class Store {
public:
    Store() {
        root_ = tmp_ / "store";
        auto r = run_shell("mkdir -p " + (tmp_ / "src/etc").string() + " && echo base > " +
                           (tmp_ / "src/etc/base").string() + " && mkdir -p " +
                           (tmp_ / "src2/opt").string() + " && echo new > " +
                           (tmp_ / "src2/opt/new").string() + " && tar -C " +
                           (tmp_ / "src").string() + " -cf " + tar("base") + " . && tar -C " +
                           (tmp_ / "src2").string() + " -cf " + tar("add") + " .");
        BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out);
        must({"apply-diff", "base"}, tar("base"));
        must({"create", "--parent", "base", "victim"});
        must({"create", "--rw", "--parent", "base", "sb"});
    }

    std::string tar(const std::string& name) const { return (tmp_ / (name + ".tar")).string(); }
    const fs::path& root() const { return root_; }

    RunResult run(const std::vector<std::string>& args, const std::string& in = "",
                  const std::vector<std::string>& env = {}) const {
        return run_strata(root_, args, in, env);
    }

    std::string must(const std::vector<std::string>& args, const std::string& in = "") const {
        RunResult r = run(args, in);
        BOOST_REQUIRE_MESSAGE(r.exit_code == 0, args[0] + " failed: " + r.err);
        return r.out;
    }

    // id -> digest of `strata diff` for every ready layer.
    std::map<std::string, std::string> contents() const {
        std::map<std::string, std::string> out;
        auto ls = nlohmann::json::parse(must({"ls", "--json"}));
        for (const auto& l : ls) {
            std::string id = l["id"];
            if (l["state"] != "ready") continue;
            RunResult d = run({"diff", id});
            BOOST_REQUIRE_MESSAGE(d.exit_code == 0, d.err);
            out[id] = strata::sha256_digest(d.out);
        }
        return out;
    }

    // Reopens the store (recovery runs) and checks fsck is clean.
    void check_clean(const std::string& cell) const {
        RunResult f = run({"fsck", "--json"});
        BOOST_TEST(f.exit_code == 0, cell << ": fsck exit " << f.exit_code << " " << f.out
                                          << f.err);
        auto j = nlohmann::json::parse(f.out, nullptr, false);
        BOOST_TEST((j.is_object() && j["clean"] == true), cell << ": " << f.out);
    }

private:
    TempDir tmp_{"strata-crash"};
    fs::path root_;
};

std::vector<Op> operations(const Store& s) {
    std::string image = std::string(STRATA_SOURCE_DIR) + "/tests/data/tzdata-oci-zstd.tar";
    return {
        {"create", {"create", "--parent", "base", "c1"}, "", false,
         {"create.after_intent", "create.after_native", "create.after_commit"},
         {"create_layer"}},
        {"create-rw", {"create", "--rw", "--storage-opt", "size=1000", "--parent", "base", "s2"},
         "", false, {"create.after_intent", "create.after_native", "create.after_commit"},
         {"create_sandbox", "expand_sandbox"}},
        {"apply-diff", {"apply-diff", "--parent", "base", "a1"}, s.tar("add"), false,
         {"apply.after_intent", "apply.after_data", "apply.before_commit", "apply.after_commit"},
         {"create_layer", "write_layer", "sync"}},
        {"remove", {"remove", "victim"}, "", false,
         {"remove.after_intent", "remove.after_rename", "remove.after_destroy"},
         {"unprepare", "rename_for_removal", "destroy"}},
        {"get", {"get", "sb"}, "", false, {"get.after_prepare", "get.after_commit"},
         {"prepare"}},
        {"put", {"put", "sb"}, "", true, {"put.after_commit", "put.after_unprepare"},
         {"unprepare"}},
        {"import", {"import", image}, "", false,
         {"apply.after_intent", "apply.after_data", "apply.before_commit", "import.after_layer"},
         {"create_layer", "write_layer", "sync"}},
        {"cleanup", {"cleanup"}, "", true, {"cleanup.after_release"}, {"unprepare"}},
    };
}

// What must hold after the interrupted operation, whether or not it finished.
void check_after(const Store& s, const Op& op, const std::map<std::string, std::string>& before,
                 const std::string& cell) {
    s.check_clean(cell);
    auto after = s.contents();
    for (const auto& [id, digest] : before) {
        if (op.name == "remove" && id == "victim") continue;  // may be gone: that is the op
        BOOST_TEST(after.count(id) == 1u, cell << ": layer " << id << " lost");
        if (after.count(id)) BOOST_TEST(after[id] == digest, cell << ": layer " << id);
    }
    for (const auto& [id, digest] : after) {
        if (before.count(id)) continue;
        bool expected = (op.name == "create" && id == "c1") ||
                        (op.name == "create-rw" && id == "s2") ||
                        (op.name == "apply-diff" && id == "a1") || op.name == "import";
        BOOST_TEST(expected, cell << ": unexpected layer " << id);
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_operation_at_every_crash_point) {
    int cells = 0;
    Store probe;
    for (const Op& op : operations(probe)) {
        for (const std::string& point : op.points) {
            Store s;
            if (op.needs_mount) s.must({"get", "sb"});
            auto before = s.contents();
            std::string cell = op.name + " x " + point;
            RunResult r = s.run(op.args, op.stdin_file, {"STRATA_CRASH_AT=" + point});
            BOOST_TEST(r.exit_code == 128 + 9, cell << ": expected a kill, got exit "
                                                     << r.exit_code << " " << r.err);
            check_after(s, op, before, cell);
            ++cells;
        }
    }
    BOOST_TEST_MESSAGE("crash matrix: " << cells << " cells");
    BOOST_TEST(cells == 22);
}

BOOST_AUTO_TEST_CASE(every_operation_with_each_native_call_failing) {
    int cells = 0;
    Store probe;
    for (const Op& op : operations(probe)) {
        for (const std::string& call : op.calls) {
            Store s;
            if (op.needs_mount) s.must({"get", "sb"});
            auto before = s.contents();
            std::string cell = op.name + " x " + call;
            RunResult r = s.run(op.args, op.stdin_file, {"STRATA_FAIL_CALL=" + call});
            BOOST_TEST(r.exit_code == 1, cell << ": exit " << r.exit_code);
            BOOST_TEST(r.err.rfind("strata: error: ", 0) == 0u, cell << ": " << r.err);
            BOOST_TEST(r.err.find("injected failure in " + call) != std::string::npos,
                       cell << ": " << r.err);
            BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, cell << ": " << r.err);
            check_after(s, op, before, cell);
            ++cells;
        }
    }
    BOOST_TEST_MESSAGE("fault matrix: " << cells << " cells");
    BOOST_TEST(cells == 15);
}
