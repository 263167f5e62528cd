// Acceptance tests of the `strata` binary against real image archives.
//
// What a sandbox on an imported image must contain is computed by an
// independent reference applier written from the OCI layer rules
// (tests/reference/oci_apply.py); the mounted sandbox is described the same
// way by tests/reference/tree_manifest.py, and the two manifests must be
// equal: names, types, modes (setuid/setgid included), owners, sizes,
// contents, symlink targets, device numbers, xattrs and hard-link groups.
// mtimes are not compared (tree_manifest.py says why).
//
// Every test makes its own store in a TempDir, which unmounts and removes
// everything on the way out, even after a failure. The mount mode is
// whatever STRATA_MOUNT_MODE says in the environment of the test run; the
// suite never overrides it, so it runs once per mode.
#define BOOST_TEST_MODULE acceptance
#include <sys/xattr.h>

#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "tests/support/fixture.h"

namespace fs = std::filesystem;
namespace bdata = boost::unit_test::data;
using nlohmann::json;
using strata::test::last_line;
using strata::test::run_shell;
using strata::test::run_strata;
using strata::test::RunResult;
using strata::test::shared_file;
using strata::test::TempDir;

namespace {

const std::string kReference = std::string(STRATA_SOURCE_DIR) + "/tests/reference/";

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spill(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
    BOOST_TEST_REQUIRE(out.good(), "cannot write " << p);
}

std::string mount_mode() {
    const char* m = std::getenv("STRATA_MOUNT_MODE");
    return m && *m ? m : "auto";
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

// json equality (kept out of Boost.Test's expression decomposition, which
// would treat two json values as containers).
bool same(const json& a, const json& b) {
    return a == b;
}

// The ids of an `ls --json` answer, in order.
std::string ls_ids(const json& ls) {
    std::string out;
    for (const auto& l : ls) out += (out.empty() ? "" : " ") + l.value("id", "?");
    return "[" + out + "]";
}

// Runs a Python script of tests/reference with `args`; returns its JSON output.
json run_reference(const std::string& script, const std::string& args) {
    TempDir io("strata-ref");
    fs::path out = io / "out.json";
    RunResult r = run_shell("python3 " + quote(kReference + script) + " " + args + " > " +
                            quote(out.string()));
    BOOST_TEST_REQUIRE(r.exit_code == 0, script << " " << args << " failed: " << r.out);
    return json::parse(slurp(out));
}

json reference_manifest(const fs::path& archive) {
    return run_reference("oci_apply.py", "manifest " + quote(archive.string()));
}

json tree_manifest(const fs::path& dir) {
    return run_reference("tree_manifest.py", quote(dir.string()));
}

// Every difference between two manifests, one readable line each.
std::vector<std::string> manifest_diff(const json& expected, const json& actual) {
    std::map<std::string, json> want, got;
    for (const auto& e : expected) want[e.at("path").get<std::string>()] = e;
    for (const auto& e : actual) got[e.at("path").get<std::string>()] = e;
    std::vector<std::string> out;
    for (const auto& [path, e] : want) {
        auto it = got.find(path);
        if (it == got.end()) {
            out.push_back("missing " + path + " (" + e.dump() + ")");
            continue;
        }
        for (auto f = e.begin(); f != e.end(); ++f) {
            const json& g = it->second.contains(f.key()) ? it->second[f.key()] : json();
            if (g != f.value()) {
                out.push_back(path + ": " + f.key() + " expected " + f.value().dump() + ", got " +
                              g.dump());
            }
        }
    }
    for (const auto& [path, e] : got) {
        if (!want.count(path)) out.push_back("unexpected " + path + " (" + e.dump() + ")");
    }
    return out;
}

void expect_same_tree(const json& expected, const json& actual, const std::string& what) {
    auto diffs = manifest_diff(expected, actual);
    std::string shown;
    for (size_t i = 0; i < diffs.size() && i < 40; ++i) shown += "\n  " + diffs[i];
    if (diffs.size() > 40) shown += "\n  ... " + std::to_string(diffs.size() - 40) + " more";
    BOOST_TEST(diffs.empty(), what << ": " << diffs.size() << " differences" << shown);
    BOOST_TEST(expected.size() == actual.size(), what << ": entry counts");
}

// A store in its own temporary directory.
struct Store : strata::test::TestStore {
    Store() : TestStore("strata-accept") {}

    std::string import(const fs::path& archive) {
        std::string top = last_line(ok({"import", archive.string()}));
        BOOST_TEST_REQUIRE(!top.empty(), "import " << archive << " printed no top layer id");
        return top;
    }

    json ls() { return ok_json({"ls", "--json"}); }
    json show(const std::string& id) { return ok_json({"show", id, "--json"}); }

    // Creates sandbox `name` on `parent`, mounts it and returns the path.
    fs::path sandbox(const std::string& name, const std::string& parent) {
        ok({"create", "--rw", "--parent", parent, name});
        fs::path path = last_line(ok({"get", name}));
        BOOST_TEST_REQUIRE(fs::is_directory(path), "get " << name << " printed " << path);
        return path;
    }

    // Relative paths and types of everything under <root>/layers.
    std::vector<std::string> layers_listing() {
        std::vector<std::string> out;
        fs::path base = root / "layers";
        for (auto it = fs::recursive_directory_iterator(base); it != fs::end(it); ++it) {
            auto st = it->symlink_status();
            out.push_back(it->path().lexically_relative(base).string() + " " +
                          std::to_string(static_cast<int>(st.type())));
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

// Imports `archive`, checks the printed id is the top of a chain as long as
// the image, mounts a sandbox on it and compares the sandbox with the
// reference manifest. Returns the top layer id.
std::string import_and_compare(Store& s, const fs::path& archive) {
    std::string top = s.import(archive);
    json layers = run_reference("oci_apply.py", "layers " + quote(archive.string()));
    json shown = s.show(top);
    BOOST_TEST(shown["chain"].size() + 1 == layers.size(), "chain of " << top);
    for (const auto& l : s.ls()) {
        BOOST_TEST(l["parent"] != top, top << " is not the top layer: " << l["id"]);
    }
    fs::path mnt = s.sandbox("sb", top);
    expect_same_tree(reference_manifest(archive), tree_manifest(mnt),
                     "sandbox on " + archive.filename().string());
    s.ok({"put", "sb"});
    return top;
}

// A docker-archive with the cases the shared images lack: an opaque
// directory whose marker sits between entries of its own layer, a
// whiteout and re-creation of the same name in one layer, a directory
// replaced by a file and a file by a directory, and hard links that
// outlive the whiteout of the name they were made from.
const char* kCraftImage = R"PY(
import hashlib, io, json, sys, tarfile
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid = 1700000000, 1000, 1000
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o750
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
            else:
                ti.mode, ti.size = 0o4711 if kind == "x" else 0o640, len(data)
            t.addfile(ti, io.BytesIO(data) if kind in "fx" else None)
    return buf.getvalue()
layers = [
    layer([("d", "d", b""), ("d/old", "f", b"old"), ("d/sub", "d", b""), ("d/sub/x", "f", b"x"),
           ("k", "x", b"k data"), ("k2", "h", "k"), ("k3", "h", "k"), ("m", "d", b""),
           ("m/f", "f", b"f"),
           ("n", "f", b"n"), ("s", "s", "d/old")]),
    layer([("d", "d", b""), ("d/new", "f", b"new"), ("d/.wh..wh..opq", "f", b""),
           ("d/new2", "f", b"new2"), (".wh.k", "f", b""), ("k", "d", b""), ("k/in", "f", b"in"),
           ("m", "f", b"m is a file"), ("n", "d", b""), ("n/g", "f", b"g")]),
    layer([(".wh.m", "f", b""), ("m", "d", b""), ("m/h", "f", b"h")]),
]
ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": ids}}).encode()
names = ["l%d/layer.tar" % i for i in range(len(layers))]
manifest = json.dumps([{"Config": "config.json", "RepoTags": ["crafted:1"],
                        "Layers": names}]).encode()
with tarfile.open(sys.argv[1], "w") as out:
    for name, data in zip(names + ["config.json", "manifest.json"], layers + [config, manifest]):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        out.addfile(ti, io.BytesIO(data))
)PY";

const std::vector<std::string> kArchives = {
    "images/tzdata-docker.tar",
    "images/tzdata-oci-gzip.tar",
    "images/tzdata-oci-zstd.tar",
    "images/public/cimage-almostempty.tar",
    "images/public/ggcr-hello-world-v25.tar",
    "images/public/ggcr-overwritten_file.tar",
    "images/public/ggcr-test_image_1.tar",
    "images/public/ggcr-whiteout_image.tar",
    "images/public/moby-emptyLayer.tar",
};

}  // namespace

BOOST_DATA_TEST_CASE(sandbox_matches_reference, bdata::make(kArchives), rel) {
    Store s;
    import_and_compare(s, shared_file(rel));
}

BOOST_AUTO_TEST_CASE(bookworm_sandbox_matches_reference) {
    Store s;
    import_and_compare(s, shared_file("images/bookworm-oci-gzip.tar"));
}

BOOST_AUTO_TEST_CASE(oci_layout_directory_matches_reference) {
    Store s;
    fs::path layout = s.dir / "layout";
    fs::create_directories(layout);
    RunResult r = run_shell("tar -xf " + quote(shared_file("images/tzdata-oci-gzip.tar")) + " -C " +
                            quote(layout.string()));
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.out);
    import_and_compare(s, layout);
}

BOOST_AUTO_TEST_CASE(crafted_whiteouts_match_reference) {
    Store s;
    fs::path archive = s.dir / "crafted.tar";
    fs::path script = s.dir / "craft.py";
    spill(script, kCraftImage);
    RunResult r = run_shell("python3 " + quote(script.string()) + " " + quote(archive.string()));
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.out);
    import_and_compare(s, archive);
}

BOOST_AUTO_TEST_CASE(import_twice_adds_no_layers) {
    Store s;
    fs::path archive = shared_file("images/tzdata-oci-zstd.tar");
    std::string top = s.import(archive);
    json before = s.ls();
    json layers = run_reference("oci_apply.py", "layers " + quote(archive.string()));
    BOOST_TEST(before.size() == layers.size());
    BOOST_TEST(s.import(archive) == top);
    json after = s.ls();
    BOOST_TEST(after.size() == before.size());
    BOOST_TEST(same(after, before), "ls --json changed:\n"
                                        << before.dump(1) << "\n"
                                        << after.dump(1));
}

BOOST_AUTO_TEST_CASE(ls_and_show_describe_layers_chains_and_mounts) {
    Store s;
    std::string top = s.import(shared_file("images/tzdata-docker.tar"));
    const std::regex rfc3339(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$)");
    std::map<std::string, json> by_id;
    int bases = 0;
    for (const auto& l : s.ls()) {
        for (const char* key : {"id", "parent", "kind", "state", "size", "created"}) {
            BOOST_TEST(l.contains(key), "ls entry lacks " << key << ": " << l.dump());
        }
        BOOST_TEST(l["kind"] == "layer");
        BOOST_TEST(l["state"] == "ready");
        BOOST_TEST(l["size"].is_number_unsigned());
        std::string created = l.value("created", "");
        BOOST_TEST(std::regex_match(created, rfc3339), "created is not RFC 3339: " << created);
        bases += l["parent"].is_null();
        by_id[l["id"].get<std::string>()] = l;
    }
    BOOST_TEST(by_id.size() == 3u);
    BOOST_TEST(bases == 1);

    // show's chain is the parent fields followed from the layer, nearest first.
    for (const auto& [id, l] : by_id) {
        json expected = json::array();
        for (json p = l["parent"]; !p.is_null(); p = by_id.at(p.get<std::string>())["parent"]) {
            expected.push_back(p);
        }
        json shown = s.show(id);
        BOOST_TEST(same(shown["chain"], expected), "chain of " << id << ": " << shown["chain"]);
        BOOST_TEST(shown["mount"]["refcount"] == 0);
    }
    BOOST_TEST(s.show(top)["chain"].size() == 2u);

    s.ok({"create", "--rw", "--parent", top, "sb"});
    json sb = s.show("sb");
    BOOST_TEST(sb["kind"] == "sandbox");
    BOOST_TEST(sb["parent"] == top);
    BOOST_TEST(sb["chain"].size() == 3u);
    BOOST_TEST(sb["chain"][0] == top);
    BOOST_TEST(sb["mount"]["refcount"] == 0);
    BOOST_TEST(sb["mount"]["path"].is_null());
    std::string path = last_line(s.ok({"get", "sb"}));
    sb = s.show("sb");
    BOOST_TEST(sb["mount"]["refcount"] == 1);
    BOOST_TEST(sb["mount"]["path"] == path);
    s.ok({"put", "sb"});
    BOOST_TEST(s.show("sb")["mount"]["refcount"] == 0);
}

BOOST_AUTO_TEST_CASE(tampered_layer_is_refused_and_changes_nothing) {
    Store s;
    s.import(shared_file("images/public/ggcr-whiteout_image.tar"));
    json ls_before = s.ls();
    auto listing_before = s.layers_listing();

    // Flip one byte of file content inside the top layer: the tar stays
    // readable, only the layer's digest no longer matches.
    fs::path archive = s.dir / "tampered.tar";
    fs::copy_file(shared_file("images/tzdata-docker.tar"), archive);
    fs::permissions(archive, fs::perms::owner_read | fs::perms::owner_write);
    json where = run_reference("oci_apply.py", "locate " + quote(archive.string()));
    {
        std::fstream f(archive, std::ios::in | std::ios::out | std::ios::binary);
        auto offset = where["offset"].get<std::streamoff>();
        char c = 0;
        f.seekg(offset);
        f.get(c);
        f.seekp(offset);
        f.put(static_cast<char>(c ^ 0x5a));
        BOOST_TEST_REQUIRE(f.good(), "cannot modify " << archive);
    }

    RunResult r = s.run({"import", archive.string()});
    BOOST_TEST(r.exit_code != 0, "tampered import succeeded: " << r.out);
    BOOST_TEST(r.err.find("digest") != std::string::npos, "stderr: " << r.err);
    std::string diff_id = where["diff_id"].get<std::string>();
    std::string hex = diff_id.substr(diff_id.find(':') + 1);
    BOOST_TEST(r.err.find(hex.substr(0, 12)) != std::string::npos,
               "stderr does not name layer " << diff_id << ": " << r.err);

    json ls_after = s.ls();
    BOOST_TEST(same(ls_after, ls_before),
               "the refused import left layers behind: " << ls_ids(ls_before) << " became "
                                                         << ls_ids(ls_after));
    BOOST_TEST(s.layers_listing() == listing_before, "layers/ changed");
    RunResult fsck = s.run({"fsck"});
    BOOST_TEST(fsck.exit_code == 0, "fsck after refused import: " << fsck.out << fsck.err);
}

BOOST_AUTO_TEST_CASE(diff_and_apply_diff_rebuild_every_layer) {
    fs::path archive = shared_file("images/tzdata-docker.tar");
    Store a;
    std::string top = a.import(archive);
    std::vector<std::string> ids = {top};
    json chain = a.show(top)["chain"];
    for (const auto& id : chain) ids.push_back(id.get<std::string>());
    std::reverse(ids.begin(), ids.end());

    Store b;
    for (size_t i = 0; i < ids.size(); ++i) {
        fs::path tar = b.dir / ("layer" + std::to_string(i) + ".tar");
        spill(tar, a.ok({"diff", ids[i]}));
        std::vector<std::string> args = {"apply-diff", ids[i]};
        if (i > 0) args.insert(args.end(), {"--parent", ids[i - 1]});
        std::string size = last_line(b.ok(args, tar.string()));
        BOOST_TEST(!size.empty());
        BOOST_TEST(size.find_first_not_of("0123456789") == std::string::npos,
                   "apply-diff printed " << size);
        json want = a.show(ids[i])["parent"], got = b.show(ids[i])["parent"];
        BOOST_TEST(same(want, got), "parent of " << ids[i] << ": " << got << " not " << want);
    }
    fs::path mnt = b.sandbox("sb", top);
    expect_same_tree(reference_manifest(archive), tree_manifest(mnt), "rebuilt chain");
    b.ok({"put", "sb"});
}

BOOST_AUTO_TEST_CASE(refcounts_survive_across_processes) {
    Store s;
    std::string top = s.import(shared_file("images/public/ggcr-test_image_1.tar"));
    s.ok({"create", "--rw", "--parent", top, "sb"});
    fs::path first = last_line(s.ok({"get", "sb"}));
    fs::path second = last_line(s.ok({"get", "sb"}));
    BOOST_TEST(first == second);
    BOOST_TEST(s.show("sb")["mount"]["refcount"] == 2);
    spill(first / "written", "kept\n");

    s.ok({"put", "sb"});
    json m = s.show("sb")["mount"];
    BOOST_TEST(m["refcount"] == 1);
    BOOST_TEST(m["path"] == first.string());
    BOOST_TEST(fs::exists(first / "foo"), "sandbox content gone after the first put");
    if (mount_mode() == "overlay") BOOST_TEST(is_mount_point(first));
    if (mount_mode() == "copy") BOOST_TEST(!is_mount_point(first));

    s.ok({"put", "sb"});
    m = s.show("sb")["mount"];
    BOOST_TEST(m["refcount"] == 0);
    BOOST_TEST(m["path"].is_null());
    BOOST_TEST(!is_mount_point(first));
    if (mount_mode() == "copy") BOOST_TEST(!fs::exists(first));
    RunResult extra = s.run({"put", "sb"});
    BOOST_TEST(extra.exit_code != 0, "put of an unmounted layer succeeded");
    BOOST_TEST(s.show("sb")["mount"]["refcount"] == 0);

    // What was written survives the unmount.
    fs::path again = last_line(s.ok({"get", "sb"}));
    BOOST_TEST(slurp(again / "written") == "kept\n");
    s.ok({"put", "sb"});
}

BOOST_AUTO_TEST_CASE(remove_refuses_mounted_layers_and_parents) {
    Store s;
    std::string top = s.import(shared_file("images/public/ggcr-whiteout_image.tar"));
    std::string middle = s.show(top)["chain"][0].get<std::string>();
    fs::path mnt = s.sandbox("sb", top);
    json before = s.ls();

    RunResult r = s.run({"remove", "sb"});
    BOOST_TEST(r.exit_code != 0, "remove of a mounted sandbox succeeded");
    BOOST_TEST(r.err.rfind("strata: error:", 0) == 0, "stderr: " << r.err);
    BOOST_TEST(r.err.find("mounted") != std::string::npos, "stderr: " << r.err);
    BOOST_TEST(same(s.ls(), before), "ls --json changed");
    BOOST_TEST(s.show("sb")["mount"]["refcount"] == 1);
    BOOST_TEST(fs::exists(mnt / "bar.txt"));

    r = s.run({"remove", middle});
    BOOST_TEST(r.exit_code != 0, "remove of a parent layer succeeded");
    BOOST_TEST(r.err.rfind("strata: error:", 0) == 0, "stderr: " << r.err);
    BOOST_TEST(
        (r.err.find("child") != std::string::npos || r.err.find("parent") != std::string::npos),
        "stderr does not say it has children: " << r.err);
    BOOST_TEST(r.err.find(middle) != std::string::npos, "stderr does not name it: " << r.err);
    BOOST_TEST(same(s.ls(), before), "ls --json changed");

    s.ok({"put", "sb"});
    s.ok({"remove", "sb"});
    BOOST_TEST(s.run({"exists", "sb"}).exit_code == 1);
    BOOST_TEST(s.ls().size() == before.size() - 1);
}

BOOST_AUTO_TEST_CASE(bare_layer_tar_is_no_image_but_applies_with_its_xattr) {
    Store s;
    fs::path layer = shared_file("images/public/moby-xattr-layer.tar");
    RunResult r = s.run({"import", layer.string()});
    BOOST_TEST(r.exit_code != 0, "import of a bare layer tar succeeded");
    BOOST_TEST(r.err.find("not an image archive") != std::string::npos, "stderr: " << r.err);

    std::string size = last_line(s.ok({"apply-diff", "xattr-layer"}, layer.string()));
    BOOST_TEST(size.find_first_not_of("0123456789") == std::string::npos);
    fs::path mnt = s.sandbox("sb", "xattr-layer");

    // The expected value is the one in the tar's PAX record.
    RunResult want = run_shell(
        "python3 -c 'import sys,tarfile; t=tarfile.open(sys.argv[1], errors=\"surrogateescape\");"
        " v=t.getmember(\"file\").pax_headers[\"SCHILY.xattr.security.capability\"];"
        " print(v.encode(\"utf-8\",\"surrogateescape\").hex())' " +
        quote(layer.string()));
    BOOST_TEST_REQUIRE(want.exit_code == 0, want.out);
    json tree = tree_manifest(mnt);
    BOOST_TEST_REQUIRE(tree.size() == 1u, tree.dump());
    BOOST_TEST(tree[0]["path"] == "/file");
    BOOST_TEST(tree[0]["xattrs"]["security.capability"] == last_line(want.out),
               "xattrs of /file: " << tree[0]["xattrs"]);
    char buf[64];
    ssize_t n = ::lgetxattr((mnt / "file").c_str(), "security.capability", buf, sizeof buf);
    BOOST_TEST(n == 20);
    s.ok({"put", "sb"});
}
