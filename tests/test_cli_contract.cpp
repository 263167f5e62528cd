// The command-line contract of DESIGN.md, checked from outside: every verb
// exists with its documented arguments, exit codes and output shapes.
//
//   exit codes    0 success; `exists` 1 when missing; usage errors 2 with
//                 stderr starting "strata: error:"; runtime errors non-zero
//                 with exactly one stderr line "strata: error: ..."
//   --json        changes: [{"path","kind"}], metadata: {"k":"v"},
//                 status: [["k","v"]]
//   --root        defaults to $STRATA_ROOT
//
// Layers are made from small tars built here with Python's tarfile and
// applied with apply-diff. Every test has its own store in a TempDir.
#define BOOST_TEST_MODULE cli_contract
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;
using strata::test::last_line;
using strata::test::run_shell;
using strata::test::run_strata;
using strata::test::RunResult;
using strata::test::TempDir;

namespace {

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

bool is_mount_point(const fs::path& p) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, point;
        f >> id >> parent >> dev >> root >> point;
        if (point == p.string()) return true;
    }
    return false;
}

bool is_number(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A runtime error: non-zero exit and exactly one stderr line, the error.
void expect_runtime_error(const RunResult& r, const std::string& what) {
    BOOST_TEST(r.exit_code != 0, what << " succeeded");
    BOOST_TEST(r.exit_code != 2, what << " exited 2 (a usage error): " << r.err);
    auto lines = lines_of(r.err);
    BOOST_TEST(lines.size() == 1u, what << ": stderr is not one line: " << r.err);
    BOOST_TEST(r.err.rfind("strata: error: ", 0) == 0, what << ": stderr: " << r.err);
}

void expect_usage_error(const RunResult& r, const std::string& what) {
    BOOST_TEST(r.exit_code == 2, what << " exited " << r.exit_code << ": " << r.err);
    BOOST_TEST(r.err.rfind("strata: error:", 0) == 0, what << ": stderr: " << r.err);
}

// Two layer tars: base.tar adds /a (100 bytes), /b (50), /c and /c/d (30);
// top.tar modifies /a, deletes /b with a whiteout and adds /e.
const char* kMakeTars = R"PY(
import io, tarfile
def add(t, name, data=None, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 1700000000
    if data is not None:
        ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)
with tarfile.open("base.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "a", b"a" * 100)
    add(t, "b", b"b" * 50)
    add(t, "c", kind=tarfile.DIRTYPE)
    add(t, "c/d", b"d" * 30)
with tarfile.open("top.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "a", b"new a\n")
    add(t, ".wh.b", b"")
    add(t, "e", b"eeee")
)PY";

struct Store : strata::test::TestStore {
    Store() : TestStore("strata-cli") {}

    // Builds base.tar and top.tar and applies them as layers "base" and
    // "top"; returns the sizes apply-diff printed.
    std::pair<std::string, std::string> two_layers() {
        RunResult r = run_shell("cd " + quote(dir.path().string()) + " && python3 - <<'EOF'\n" +
                                kMakeTars + "EOF\n");
        BOOST_TEST_REQUIRE(r.exit_code == 0, r.out);
        std::string base = last_line(ok({"apply-diff", "base"}, (dir / "base.tar").string()));
        std::string top =
            last_line(ok({"apply-diff", "top", "--parent", "base"}, (dir / "top.tar").string()));
        return {base, top};
    }
};

}  // namespace

// Each verb of the contract with the options and positionals it documents.
const std::map<std::string, std::vector<std::string>> kVerbs = {
    {"create", {"ID", "--rw", "--parent", "--storage-opt"}},
    {"remove", {"ID"}},
    {"exists", {"ID"}},
    {"get", {"ID", "--mount-label"}},
    {"put", {"ID"}},
    {"diff", {"ID", "--parent"}},
    {"changes", {"ID", "--parent", "--json"}},
    {"apply-diff", {"ID", "--parent"}},
    {"diff-size", {"ID", "--parent"}},
    {"metadata", {"ID", "--json"}},
    {"status", {"--json"}},
    {"cleanup", {}},
    {"import", {"ARCHIVE", "--name"}},
    {"ls", {"--catalog"}},
    {"tree", {"--dot", "--catalog"}},
    {"show", {"ID", "--catalog"}},
    {"files", {"ID", "--catalog"}},
    {"find", {"PATH", "--catalog"}},
    {"du", {"--catalog"}},
    {"stats", {"--catalog"}},
    {"fsck", {"--repair", "--full", "--json"}},
    {"recover", {}},
};

BOOST_AUTO_TEST_CASE(help_of_strata_and_of_every_verb) {
    RunResult top = run_strata("", {"--help"});
    BOOST_TEST(top.exit_code == 0);
    for (const auto& [verb, args] : kVerbs) {
        BOOST_TEST(top.out.find("  " + verb + " ") != std::string::npos,
                   "strata --help does not list " << verb);
    }
    for (const auto& [verb, args] : kVerbs) {
        BOOST_TEST_CONTEXT("strata " << verb << " --help") {
            RunResult r = run_strata("", {verb, "--help"});
            BOOST_TEST(r.exit_code == 0);
            BOOST_TEST(
                r.out.find("Usage: strata " + verb) != std::string::npos,
                "not the help of " << verb << "; it begins: " << r.out.substr(0, r.out.find('\n')));
            auto lines = lines_of(r.out);
            bool described =
                !lines.empty() && lines[0].rfind("Usage", 0) != 0 && lines[0].size() > 10;
            BOOST_TEST(described, "no description of what " << verb << " does:\n" << r.out);
            for (const auto& a : args) {
                BOOST_TEST(r.out.find(a) != std::string::npos, verb << " does not document " << a);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
    Store s;
    expect_usage_error(s.run({"frobnicate"}), "an unknown verb");
    expect_usage_error(s.run({"frobnicate", "--help"}), "an unknown verb with --help");
    expect_usage_error(s.run({}), "no verb");
    for (const char* verb : {"create", "remove", "exists", "get", "put", "diff", "changes",
                             "apply-diff", "diff-size", "metadata", "show", "files", "find"}) {
        expect_usage_error(s.run({verb}), std::string(verb) + " without its argument");
    }
    expect_usage_error(s.run({"ls", "--no-such-option"}), "an unknown option");
    expect_usage_error(s.run({"create", "a", "b"}), "an extra argument");
}

BOOST_AUTO_TEST_CASE(runtime_errors_are_one_error_line) {
    Store s;
    for (const char* verb :
         {"remove", "get", "put", "diff", "changes", "diff-size", "metadata", "show", "files"}) {
        expect_runtime_error(s.run({verb, "no-such-layer"}),
                             std::string(verb) + " of a missing layer");
    }
    expect_runtime_error(s.run({"import", (s.dir / "missing.tar").string()}),
                         "import of a missing file");
    expect_runtime_error(s.run({"create", "--parent", "no-such-layer", "x"}),
                         "create on a missing parent");
    expect_runtime_error(s.run({"create", "--storage-opt", "novalue", "x"}),
                         "create with a malformed --storage-opt");
    s.ok({"create", "x"});
    expect_runtime_error(s.run({"create", "x"}), "create of an existing id");
    RunResult r = s.run({"exists", "x"});
    BOOST_TEST(r.exit_code == 0);
}

BOOST_AUTO_TEST_CASE(exists_create_and_remove) {
    Store s;
    BOOST_TEST(s.run({"exists", "l1"}).exit_code == 1);
    s.ok({"create", "l1"});
    BOOST_TEST(s.run({"exists", "l1"}).exit_code == 0);
    s.ok({"create", "--parent", "l1", "--storage-opt", "size=1G", "--storage-opt", "k=v", "l2"});
    s.ok({"create", "--rw", "--parent", "l2", "sb"});
    json ls = s.ok_json({"ls", "--json"});
    BOOST_TEST(ls.size() == 3u);
    json sb = s.ok_json({"show", "sb", "--json"});
    BOOST_TEST(sb["kind"] == "sandbox");
    BOOST_TEST(sb["parent"] == "l2");
    BOOST_TEST(s.ok_json({"show", "l2", "--json"})["kind"] == "layer");
    s.ok({"remove", "sb"});
    BOOST_TEST(s.run({"exists", "sb"}).exit_code == 1);
    BOOST_TEST(s.run({"exists", "l2"}).exit_code == 0);
}

BOOST_AUTO_TEST_CASE(apply_diff_prints_the_size_and_diff_size_the_bytes) {
    Store s;
    auto [base_size, top_size] = s.two_layers();
    BOOST_TEST_REQUIRE(is_number(base_size), "apply-diff printed '" << base_size << "'");
    BOOST_TEST_REQUIRE(is_number(top_size), "apply-diff printed '" << top_size << "'");
    BOOST_TEST(std::stoull(base_size) >= 180u, "base holds 180 content bytes");
    BOOST_TEST(std::stoull(top_size) >= 10u, "top holds 10 content bytes");
    BOOST_TEST(std::stoull(top_size) < std::stoull(base_size));

    std::string base_bytes = last_line(s.ok({"diff-size", "base"}));
    std::string top_bytes = last_line(s.ok({"diff-size", "top", "--parent", "base"}));
    BOOST_TEST(is_number(base_bytes));
    BOOST_TEST(base_bytes == base_size);
    BOOST_TEST(top_bytes == top_size);
}

BOOST_AUTO_TEST_CASE(changes_json_lists_adds_modifies_and_deletes) {
    Store s;
    s.two_layers();
    auto as_set = [](const json& j) {
        std::set<std::pair<std::string, std::string>> out;
        for (const auto& c : j) {
            BOOST_TEST(c.size() == 2u, "change has other keys: " << c.dump());
            out.emplace(c.at("path").get<std::string>(), c.at("kind").get<std::string>());
        }
        return out;
    };
    using Set = std::set<std::pair<std::string, std::string>>;
    json top = s.ok_json({"changes", "top", "--json"});
    BOOST_TEST_REQUIRE(top.is_array());
    Set want_top = {{"/a", "modify"}, {"/b", "delete"}, {"/e", "add"}};
    BOOST_TEST((as_set(top) == want_top), "changes of top: " << top.dump());
    json with_parent = s.ok_json({"changes", "top", "--parent", "base", "--json"});
    BOOST_TEST((as_set(with_parent) == want_top));
    Set want_base = {{"/a", "add"}, {"/b", "add"}, {"/c", "add"}, {"/c/d", "add"}};
    json base = s.ok_json({"changes", "base", "--json"});
    BOOST_TEST((as_set(base) == want_base), "changes of base: " << base.dump());
}

BOOST_AUTO_TEST_CASE(diff_writes_the_layer_as_a_tar) {
    Store s;
    s.two_layers();
    fs::path tar = s.dir / "diff.tar";
    {
        std::ofstream out(tar, std::ios::binary);
        out << s.ok({"diff", "top", "--parent", "base"});
    }
    RunResult r = run_shell(
        "python3 -c 'import sys,tarfile,hashlib\n"
        "for m in tarfile.open(sys.argv[1], \"r:\"):\n"
        "    n = m.name[2:] if m.name.startswith(\"./\") else m.name\n"
        "    d = hashlib.sha256(tarfile.open(sys.argv[1]).extractfile(m.name).read()).hexdigest()"
        " if m.isreg() else \"-\"\n"
        "    print(n.rstrip(\"/\"), d)' " +
        quote(tar.string()));
    BOOST_TEST_REQUIRE(r.exit_code == 0, "diff is not a plain tar: " << r.out);
    std::map<std::string, std::string> got;
    for (const auto& line : lines_of(r.out)) got[line.substr(0, line.find(' '))] = line;
    BOOST_TEST(got.count("a"), r.out);
    BOOST_TEST(got.count(".wh.b"), "no whiteout of /b: " << r.out);
    BOOST_TEST(got.count("e"), r.out);
    BOOST_TEST(!got.count("c/d"), "diff of top holds a base file: " << r.out);
    BOOST_TEST(got["a"] == "a 77981ea7ac834d42c8597b6879cf9e934679a54e817b2cd2ef461160026d7714",
               "content of a in the diff: " << got["a"]);  // sha256 of "new a\n"
}

BOOST_AUTO_TEST_CASE(parent_arguments_must_name_the_parent) {
    Store s;
    s.two_layers();
    s.ok({"create", "other"});
    expect_runtime_error(s.run({"diff", "top", "--parent", "other"}), "diff with a wrong parent");
    expect_runtime_error(s.run({"changes", "top", "--parent", "other", "--json"}),
                         "changes with a wrong parent");
    expect_runtime_error(s.run({"diff-size", "top", "--parent", "other"}),
                         "diff-size with a wrong parent");
}

BOOST_AUTO_TEST_CASE(metadata_json_is_an_object_of_strings) {
    Store s;
    s.two_layers();
    json m = s.ok_json({"metadata", "top", "--json"});
    BOOST_TEST_REQUIRE(m.is_object(), m.dump());
    BOOST_TEST(!m.empty());
    for (auto it = m.begin(); it != m.end(); ++it) {
        BOOST_TEST(it->is_string(), "metadata " << it.key() << " is " << it->dump());
    }
}

BOOST_AUTO_TEST_CASE(status_json_is_an_array_of_pairs) {
    Store s;
    s.two_layers();
    json st = s.ok_json({"status", "--json"});
    BOOST_TEST_REQUIRE(st.is_array(), st.dump());
    BOOST_TEST(!st.empty());
    for (const auto& kv : st) {
        bool pair = kv.is_array() && kv.size() == 2 && kv[0].is_string() && kv[1].is_string();
        BOOST_TEST(pair, "status item is not a [key, value] pair of strings: " << kv.dump());
    }
}

BOOST_AUTO_TEST_CASE(get_put_and_cleanup_release_mounts) {
    Store s;
    s.two_layers();
    s.ok({"create", "--rw", "--parent", "top", "sb"});
    fs::path path = last_line(s.ok({"get", "sb", "--mount-label", "test-label"}));
    BOOST_TEST_REQUIRE(fs::is_regular_file(path / "a"), "get printed " << path);
    BOOST_TEST(!fs::exists(path / "b"), "whiteout of /b not applied");
    BOOST_TEST(last_line(s.ok({"get", "sb"})) == path.string());
    BOOST_TEST(s.ok_json({"show", "sb", "--json"})["mount"]["refcount"] == 2);
    { std::ofstream(path / "written") << "kept\n"; }

    RunResult r = s.run({"cleanup"});
    BOOST_TEST(r.exit_code == 0, r.err);
    json m = s.ok_json({"show", "sb", "--json"})["mount"];
    BOOST_TEST(m["refcount"] == 0);
    BOOST_TEST(m["path"].is_null());
    BOOST_TEST(!is_mount_point(path));
    BOOST_TEST(s.run({"exists", "sb"}).exit_code == 0, "cleanup removed the sandbox");
    BOOST_TEST(s.run({"put", "sb"}).exit_code != 0, "put after cleanup succeeded");

    fs::path again = last_line(s.ok({"get", "sb"}));
    BOOST_TEST(fs::exists(again / "written"), "a write before cleanup is lost");
    s.ok({"put", "sb"});
    BOOST_TEST(!is_mount_point(again));
}

BOOST_AUTO_TEST_CASE(root_defaults_to_strata_root) {
    TempDir dir("strata-cli-env");
    ::unsetenv("STRATA_ROOT");
    fs::path root = dir / "from-env";
    RunResult r = run_strata("", {"create", "env-layer"}, "", {"STRATA_ROOT=" + root.string()});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    BOOST_TEST(fs::exists(root / "catalog.db"), "no store made at $STRATA_ROOT");
    BOOST_TEST(run_strata(root, {"exists", "env-layer"}).exit_code == 0);
    r = run_strata("", {"exists", "env-layer"}, "", {"STRATA_ROOT=" + root.string()});
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(run_strata(dir / "other", {"exists", "env-layer"}).exit_code == 1);
}

BOOST_AUTO_TEST_CASE(inspection_reads_a_catalog_file_alone) {
    Store s;
    s.two_layers();
    fs::path copy = s.dir / "copied.db";
    s.ok({"cleanup"});
    RunResult r = run_shell("sqlite3 " + quote((s.root / "catalog.db").string()) + " \".backup " +
                            (copy.string()) + "\"");
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.out);
    fs::path nowhere = s.dir / "no-root";
    std::string cat = copy.string();
    json ls = json::parse(run_strata(nowhere, {"ls", "--catalog", cat, "--json"}).out);
    BOOST_TEST(ls.size() == 2u);
    json show = json::parse(run_strata(nowhere, {"show", "top", "--catalog", cat, "--json"}).out);
    BOOST_TEST(show["parent"] == "base");
    RunResult find = run_strata(nowhere, {"find", "/c/d", "--catalog", cat});
    BOOST_TEST(find.exit_code == 0);
    BOOST_TEST(find.out.find("base") != std::string::npos, find.out);
    for (const char* verb : {"tree", "du", "stats"}) {
        BOOST_TEST(run_strata(nowhere, {verb, "--catalog", cat}).exit_code == 0, verb);
    }
    BOOST_TEST(run_strata(nowhere, {"files", "base", "--catalog", cat}).exit_code == 0);
    BOOST_TEST(!fs::exists(nowhere), "--catalog made a store at --root");
}
