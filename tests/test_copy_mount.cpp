#define BOOST_TEST_MODULE copy_mount
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/copy_mount.h"
#include "engine/digest.h"
#include "engine/error.h"
#include "engine/merged_view.h"
#include "tests/support/fixture.h"
#include "tests/support/tree_builder.h"
#include "tests/support/tree_compare.h"

namespace fs = std::filesystem;
using strata::test::Manifest;
using strata::test::ManifestEntry;
using strata::test::OverlayMount;
using strata::test::TempDir;
using strata::test::TreeBuilder;

namespace {

void expect_same(const Manifest& expected, const Manifest& actual, const std::string& what) {
    auto diffs = strata::test::compare_manifests(expected, actual);
    BOOST_TEST(diffs.empty(), what << ":\n" << strata::test::format_differences(diffs));
}

const ManifestEntry& entry(const Manifest& m, const std::string& path) {
    const ManifestEntry* e = strata::test::find_entry(m, path);
    BOOST_REQUIRE_MESSAGE(e != nullptr, "no entry " << path);
    return *e;
}

bool has(const Manifest& m, const std::string& path) {
    return strata::test::find_entry(m, path) != nullptr;
}

std::string sha(const std::string& s) {
    return strata::digest_hex(strata::sha256_digest(s));
}

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(gen() & 0xff);
    return out;
}

// Materializes `layers` into `dest` and mounts them with overlayfs; the two
// trees must be identical. Returns the materialized tree's manifest.
Manifest check_against_kernel(const TempDir& tmp, const std::vector<fs::path>& layers,
                              const fs::path& dest) {
    fs::create_directories(dest);
    strata::materialize(layers, dest);
    Manifest ours = strata::test::scan_tree(dest);
    Manifest kernel;
    {
        OverlayMount mount(layers, tmp / (dest.filename().string() + "-overlay"));
        kernel = strata::test::scan_tree(mount.path());
    }
    expect_same(kernel, ours, "overlayfs (expected) vs materialize (actual)");
    BOOST_TEST(ours.size() == kernel.size());
    return ours;
}

struct stat lstat_of(const fs::path& p) {
    struct stat st;
    BOOST_REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, "lstat " << p);
    return st;
}

std::string opaque_value(const fs::path& p) {
    char buf[8] = {};
    ssize_t n = ::lgetxattr(p.c_str(), "trusted.overlay.opaque", buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

BOOST_AUTO_TEST_CASE(materialize_matches_overlayfs_for_every_file_type) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("bin").file("bin/sh", "#!shell\n", 0755);
    l2.file("bin/su", "su binary", 0755).owner("bin/su", 0, 0).chmod("bin/su", 04755);
    l2.dir("etc").file("etc/passwd", "root:x:0:0\n").file("etc/shadow", "secret");
    l2.owner("etc/shadow", 0, 42).chmod("etc/shadow", 0640);
    l2.dir("tmp", 01777).dir("dev");
    l2.device("dev/null", 'c', 1, 3, 0666).device("dev/loop0", 'b', 7, 0, 0660);
    l2.fifo("dev/initctl", 0600).socket("dev/log", 0666);
    l2.file("big", random_bytes(300000, 1)).file("empty", "", 0400);
    l2.sparse("sparse.img", 8 << 20, {{0, "head"}, {4 << 20, "middle"}, {(8 << 20) - 4, "tail"}});
    l2.stamp(1'500'000'000);

    TreeBuilder l1(tmp / "l1");
    l1.dir("usr").dir("usr/bin").file("usr/bin/ping", "ping", 0755).capability("usr/bin/ping");
    l1.file("usr/bin/wall", "wall", 0755).owner("usr/bin/wall", 0, 5).chmod("usr/bin/wall", 02755);
    l1.symlink("usr/bin/sh", "../../bin/sh").symlink("abs", "/etc/passwd");
    l1.symlink("dangling", "nowhere/at/all").owner("abs", 1000, 1000);
    l1.xattr("abs", "trusted.note", "on a symlink");
    l1.dir("home").dir("home/alice", 0700).owner("home/alice", 1000, 1000);
    l1.xattr("home/alice", "user.dir", "d").file("home/alice/notes", "n", 0600);
    l1.owner("home/alice/notes", 1000, 1000);
    l1.xattr("home/alice/notes", "user.k", std::string("v\x01\x00z", 4));
    l1.stamp(1'600'000'000);

    TreeBuilder l0(tmp / "l0");
    l0.dir("etc", 0700).file("etc/passwd", "root:x:0:0:new\n").file("etc/hostname", "box\n");
    l0.chmod(".", 0711).stamp(1'700'000'000);

    std::vector<fs::path> layers{l0.root(), l1.root(), l2.root()};
    Manifest m = check_against_kernel(tmp, layers, tmp / "dest");

    BOOST_TEST(entry(m, ".").mode == 0711u);
    BOOST_TEST(entry(m, "bin/su").mode == 04755u);
    BOOST_TEST(entry(m, "usr/bin/wall").mode == 02755u);
    BOOST_TEST(entry(m, "usr/bin/wall").gid == 5u);
    BOOST_TEST(entry(m, "tmp").mode == 01777u);
    BOOST_TEST(entry(m, "usr/bin/ping").xattrs.count("security.capability") == 1u);
    BOOST_TEST(entry(m, "home/alice/notes").xattrs.at("user.k") == std::string("v\x01\x00z", 4));
    BOOST_TEST(entry(m, "abs").uid == 1000u);
    BOOST_TEST(entry(m, "abs").link_target == "/etc/passwd");
    BOOST_TEST(entry(m, "etc").mode == 0700u);
    BOOST_TEST(entry(m, "etc/passwd").sha256 == sha("root:x:0:0:new\n"));
    BOOST_TEST(entry(m, "etc/shadow").gid == 42u);
    BOOST_TEST(entry(m, "dev/null").type == 'c');
    BOOST_TEST(entry(m, "dev/null").rdev_minor == 3u);
    BOOST_TEST(entry(m, "dev/loop0").type == 'b');
    BOOST_TEST(entry(m, "dev/initctl").type == 'p');
    BOOST_TEST(entry(m, "dev/log").type == 's');
    BOOST_TEST(entry(m, "big").sha256 == sha(random_bytes(300000, 1)));

    // Holes stay holes: 8 MiB apparent, a few blocks allocated.
    struct stat sp = lstat_of(tmp / "dest" / "sparse.img");
    BOOST_TEST(sp.st_size == 8 << 20);
    BOOST_TEST(sp.st_blocks * 512 < (1 << 20));
}

BOOST_AUTO_TEST_CASE(materialize_applies_whiteouts_like_overlayfs) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("a").file("a/f1", "1").file("a/f2", "2").dir("a/sub").file("a/sub/x", "x");
    l2.file("keep", "k").file("gone", "g").dir("gonedir").file("gonedir/inner", "i");
    l2.file("re", "old").dir("redir").file("redir/old", "o").stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.dir("a").whiteout("a/f1").whiteout("gonedir").whiteout("gone").whiteout("re");
    l1.whiteout("redir").whiteout("never-existed").stamp(1'600'000'000);
    TreeBuilder l0(tmp / "l0");
    l0.file("re", "new").dir("redir").file("redir/new", "n").dir("a").whiteout("a/sub");
    l0.stamp(1'700'000'000);

    Manifest m = check_against_kernel(tmp, {l0.root(), l1.root(), l2.root()}, tmp / "dest");
    BOOST_TEST(!has(m, "a/f1"));
    BOOST_TEST(has(m, "a/f2"));
    BOOST_TEST(!has(m, "a/sub"));
    BOOST_TEST(!has(m, "a/sub/x"));
    BOOST_TEST(!has(m, "gone"));
    BOOST_TEST(!has(m, "gonedir"));
    BOOST_TEST(!has(m, "gonedir/inner"));
    BOOST_TEST(!has(m, "never-existed"));
    BOOST_TEST(entry(m, "re").sha256 == sha("new"));
    BOOST_TEST(has(m, "redir/new"));
    BOOST_TEST(!has(m, "redir/old"));
    for (const ManifestEntry& e : m) BOOST_TEST(!(e.type == 'c' && e.rdev_major == 0u), e.path);
}

BOOST_AUTO_TEST_CASE(materialize_applies_opaque_dirs_like_overlayfs) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("o").file("o/low1", "l").dir("o/sub").file("o/sub/low2", "l").file("top-level", "t");
    l2.stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.dir("o").opaque("o").file("o/mid", "m").dir("o/sub").file("o/sub/mid2", "m");
    l1.stamp(1'600'000'000);
    // The kernel ignores the opaque mark on a layer's root.
    TreeBuilder l0(tmp / "l0");
    l0.dir("o").file("o/top", "t").opaque(".").stamp(1'700'000'000);

    std::vector<fs::path> layers{l0.root(), l1.root(), l2.root()};
    Manifest m = check_against_kernel(tmp, layers, tmp / "dest");
    BOOST_TEST(has(m, "o/top"));
    BOOST_TEST(has(m, "o/mid"));
    BOOST_TEST(has(m, "o/sub/mid2"));
    BOOST_TEST(!has(m, "o/low1"));
    BOOST_TEST(!has(m, "o/sub/low2"));  // hidden by the opaque ancestor, not by o/sub
    BOOST_TEST(has(m, "top-level"));
    BOOST_TEST(entry(m, "o").xattrs.empty());

    // The view itself agrees: listing below an opaque directory stops there.
    strata::MergedView view(layers);
    BOOST_TEST(view.list("o/sub") == std::vector<std::string>{"mid2"});
    BOOST_TEST(view.list("o") == (std::vector<std::string>{"mid", "sub", "top"}));
    BOOST_TEST(view.lookup("top-level").has_value());
}

BOOST_AUTO_TEST_CASE(materialize_replaces_dirs_and_files_like_overlayfs) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("d1").file("d1/x", "x").file("f1", "f").dir("d2").file("d2/y", "y");
    l2.dir("d3").file("d3/z", "z").stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.file("d1", "file over dir").dir("f1").file("f1/inside", "i").symlink("d2", "d3");
    l1.file("d3", "file between dirs").stamp(1'600'000'000);
    TreeBuilder l0(tmp / "l0");
    l0.dir("d3").file("d3/top", "t").stamp(1'700'000'000);

    Manifest m = check_against_kernel(tmp, {l0.root(), l1.root(), l2.root()}, tmp / "dest");
    BOOST_TEST(entry(m, "d1").type == 'f');
    BOOST_TEST(!has(m, "d1/x"));
    BOOST_TEST(entry(m, "f1").type == 'd');
    BOOST_TEST(has(m, "f1/inside"));
    BOOST_TEST(entry(m, "d2").type == 'l');
    BOOST_TEST(!has(m, "d2/y"));
    BOOST_TEST(has(m, "d3/top"));
    BOOST_TEST(!has(m, "d3/z"));  // the file in l1 stops the merge
}

BOOST_AUTO_TEST_CASE(materialize_never_follows_symlinks_of_a_layer) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("real").file("real/file", "r").dir("link").file("link/hidden", "h");
    l2.dir("s").file("s/f2", "f2").stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.symlink("link", "real").symlink("etc", "/etc").dir("d").file("d/f", "f");
    l1.symlink("s", "d").symlink("up", "..").stamp(1'600'000'000);
    TreeBuilder l0(tmp / "l0");
    l0.file("top", "t").stamp(1'700'000'000);

    std::vector<fs::path> layers{l0.root(), l1.root(), l2.root()};
    Manifest m = check_against_kernel(tmp, layers, tmp / "dest");
    BOOST_TEST(entry(m, "link").type == 'l');
    BOOST_TEST(entry(m, "s").type == 'l');
    BOOST_TEST(!has(m, "link/hidden"));
    BOOST_TEST(!has(m, "etc/passwd"));

    // Lookups through a symlink of a layer find nothing, wherever it points.
    strata::MergedView view(layers);
    BOOST_TEST(!view.lookup("link/file").has_value());
    BOOST_TEST(!view.lookup("link/hidden").has_value());
    BOOST_TEST(!view.lookup("s/f").has_value());
    BOOST_TEST(!view.lookup("s/f2").has_value());
    BOOST_TEST(!view.lookup("etc/passwd").has_value());
    BOOST_TEST(!view.lookup("up/l0/top").has_value());
    BOOST_TEST(view.list("link").empty());
    BOOST_TEST(view.list("etc").empty());
    BOOST_TEST(view.lookup("d/f").has_value());
}

BOOST_AUTO_TEST_CASE(materialize_keeps_hard_links_like_overlayfs) {
    TempDir tmp("strata-copy");
    TreeBuilder l2(tmp / "l2");
    l2.dir("h").file("h/a", "shared", 0750).hardlink("h/b", "h/a").hardlink("h/c", "h/a");
    l2.dir("other").hardlink("other/d", "h/a").file("x", "xy").hardlink("y", "x");
    l2.symlink("sl1", "target").hardlink("sl2", "sl1").stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.dir("h").file("h/b", "not linked").whiteout("h/c").stamp(1'600'000'000);
    TreeBuilder l0(tmp / "l0");
    l0.file("z", "z").hardlink("z2", "z").stamp(1'700'000'000);

    Manifest m = check_against_kernel(tmp, {l0.root(), l1.root(), l2.root()}, tmp / "dest");
    BOOST_TEST(entry(m, "other/d").link_group == "h/a");
    BOOST_TEST(entry(m, "h/b").link_group == "h/b");
    BOOST_TEST(!has(m, "h/c"));
    BOOST_TEST(entry(m, "y").link_group == "x");
    BOOST_TEST(entry(m, "z2").link_group == "z");
    BOOST_TEST(entry(m, "sl2").link_group == "sl1");
    struct stat a = lstat_of(tmp / "dest" / "h" / "a");
    BOOST_TEST(a.st_ino == lstat_of(tmp / "dest" / "other" / "d").st_ino);
    BOOST_TEST(a.st_nlink == 2u);
}

BOOST_AUTO_TEST_CASE(materialize_refuses_bad_arguments) {
    TempDir tmp("strata-copy");
    TreeBuilder l0(tmp / "l0");
    l0.file("f", "f");
    TreeBuilder full(tmp / "full");
    full.file("already", "here");
    BOOST_CHECK_THROW(strata::materialize({l0.root()}, full.root()), strata::Error);
    BOOST_TEST(!fs::exists(full.at("f")));
    fs::create_directory(tmp / "dest");
    BOOST_CHECK_THROW(strata::materialize({l0.root(), tmp / "missing"}, tmp / "dest"),
                      strata::Error);
    BOOST_TEST(fs::is_empty(tmp / "dest"));
}

BOOST_AUTO_TEST_CASE(tree_compare_reports_each_difference) {
    TempDir tmp("strata-copy");
    auto build = [&](const std::string& name) {
        TreeBuilder t(tmp / name);
        t.dir("d").file("d/f", "content").hardlink("d/g", "d/f").symlink("l", "d/f");
        t.file("x", "x").stamp(1'500'000'000);
        return t;
    };
    TreeBuilder a = build("a");
    TreeBuilder b = build("b");
    expect_same(strata::test::scan_tree(a.root()), strata::test::scan_tree(b.root()), "same");

    b.chmod("x", 0600).remove("d/g").file("d/g", "content").symlink("l2", "x");
    b.xattr("d", "user.k", "v").stamp(1'500'000'000);
    auto diffs = strata::test::compare_manifests(strata::test::scan_tree(a.root()),
                                                 strata::test::scan_tree(b.root()));
    std::string text = strata::test::format_differences(diffs);
    BOOST_TEST(diffs.size() >= 4u, text);
    BOOST_TEST(text.find("x: mode 0644 != 0600") != std::string::npos, text);
    BOOST_TEST(text.find("d/g: hard-link group d/f != d/g") != std::string::npos, text);
    BOOST_TEST(text.find("only in actual: l2") != std::string::npos, text);
    BOOST_TEST(text.find("d: xattrs {} != {user.k=v}") != std::string::npos, text);
}

// --- capture ---------------------------------------------------------------

namespace {

// Two lower layers with something of every kind, nearest first.
std::vector<fs::path> build_lower(const TempDir& tmp) {
    TreeBuilder l2(tmp / "l2");
    l2.dir("etc").file("etc/passwd", "root:x:0:0\n").file("etc/group", "root:x:0:\n");
    l2.file("etc/hosts", "127.0.0.1 localhost\n").dir("etc/ssl").dir("etc/ssl/certs");
    l2.file("etc/ssl/certs/ca.pem", "CERTIFICATE-0001");
    l2.dir("usr").dir("usr/bin").file("usr/bin/tool", "tool", 0755);
    l2.file("usr/bin/suid", "suid", 0755).chmod("usr/bin/suid", 04755);
    l2.dir("usr/lib").file("usr/lib/libx.so.1", "elf").symlink("usr/lib/libx.so", "libx.so.1");
    l2.dir("var").dir("var/log").file("var/log/old.log", "log");
    l2.dir("data").file("data/linked1", "linked").hardlink("data/linked2", "data/linked1");
    l2.file("data/xattr-file", "x").xattr("data/xattr-file", "user.k", "v");
    l2.dir("tree").dir("tree/a").dir("tree/a/b").file("tree/a/b/c", "c");
    l2.device("devnode", 'c', 1, 5).fifo("pipe").dir("opt").file("opt/hidden", "h");
    l2.stamp(1'500'000'000);
    TreeBuilder l1(tmp / "l1");
    l1.dir("etc").file("etc/hosts", "127.0.0.1 localhost box\n").whiteout("etc/group");
    l1.dir("opt").opaque("opt").file("opt/own", "o").stamp(1'600'000'000);
    return {l1.root(), l2.root()};
}

std::vector<fs::path> chain(const fs::path& upper, const std::vector<fs::path>& lower) {
    std::vector<fs::path> all{upper};
    all.insert(all.end(), lower.begin(), lower.end());
    return all;
}

// A fresh copy-mode mount of [upper] + lower, at tmp/name.
fs::path mount_copy(const TempDir& tmp, const fs::path& upper, const std::vector<fs::path>& lower,
                    const std::string& name) {
    fs::path dir = tmp / name;
    fs::create_directories(dir);
    strata::materialize(chain(upper, lower), dir);
    return dir;
}

// After a capture, [upper] + lower must show `mounted` exactly, both when
// materialized again and through the kernel's overlayfs.
void check_capture(const TempDir& tmp, const fs::path& mounted, const fs::path& upper,
                   const std::vector<fs::path>& lower, const std::string& tag) {
    BOOST_TEST(!fs::exists(upper.string() + ".capture-tmp"));
    Manifest want = strata::test::scan_tree(mounted);
    fs::path again = mount_copy(tmp, upper, lower, tag + "-again");
    expect_same(want, strata::test::scan_tree(again), "mounted vs materialize after capture");
    OverlayMount kernel(chain(upper, lower), tmp / (tag + "-overlay"));
    expect_same(want, strata::test::scan_tree(kernel.path()), "mounted vs overlayfs after capture");
}

Manifest scan_upper(const fs::path& upper) {
    return strata::test::scan_tree(upper);
}

bool is_whiteout_entry(const Manifest& m, const std::string& path) {
    const ManifestEntry* e = strata::test::find_entry(m, path);
    return e != nullptr && e->type == 'c' && e->rdev_major == 0u && e->rdev_minor == 0u;
}

}  // namespace

BOOST_AUTO_TEST_CASE(capture_records_additions_and_modifications) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");

    TreeBuilder m(mounted);
    m.file("etc/new.conf", "new").symlink("etc/link", "hosts").fifo("etc/fifo");
    m.device("etc/dev", 'b', 8, 1).dir("srv").dir("srv/www").file("srv/www/index.html", "hi");
    m.file("srv/a", "linked new").hardlink("srv/b", "srv/a");
    m.file("etc/passwd", "root:x:0:0:changed\n");
    struct stat ca = lstat_of(m.at("etc/ssl/certs/ca.pem"));  // same size and mtime
    m.file("etc/ssl/certs/ca.pem", "CERTIFICATE-0002")
        .mtime("etc/ssl/certs/ca.pem", ca.st_mtim.tv_sec, ca.st_mtim.tv_nsec);
    m.chmod("usr/bin/tool", 0700).owner("data/xattr-file", 1000, 1000);
    m.xattr("usr/lib/libx.so.1", "user.new", "1").xattr("data/xattr-file", "user.k", "w");
    m.remove("usr/lib/libx.so").symlink("usr/lib/libx.so", "libx.so.2");
    m.remove("devnode").device("devnode", 'c', 1, 7).chmod("var/log", 0750).chmod(".", 0700);
    strata::capture(mounted, lower, upper.root());

    Manifest up = scan_upper(upper.root());
    for (const char* p : {"etc/new.conf", "etc/link", "etc/fifo", "etc/dev", "srv/www/index.html",
                          "etc/passwd", "etc/ssl/certs/ca.pem", "usr/bin/tool", "data/xattr-file",
                          "usr/lib/libx.so.1", "usr/lib/libx.so", "devnode"}) {
        BOOST_TEST(has(up, p), p);
    }
    for (const char* p :
         {"usr/bin/suid", "tree", "etc/hosts", "var/log/old.log", "data/linked1", "pipe", "opt"}) {
        BOOST_TEST(!has(up, p), p);
    }
    BOOST_TEST(entry(up, ".").mode == 0700u);
    BOOST_TEST(entry(up, "usr/bin/tool").mode == 0700u);
    BOOST_TEST(entry(up, "data/xattr-file").xattrs.at("user.k") == "w");
    BOOST_TEST(entry(up, "devnode").rdev_minor == 7u);
    BOOST_TEST(entry(up, "var/log").mode == 0750u);
    BOOST_TEST(opaque_value(upper.at("var/log")).empty());
    BOOST_TEST(opaque_value(upper.at("etc")).empty());
    BOOST_TEST(entry(up, "srv/b").link_group == "srv/a");
    check_capture(tmp, mounted, upper.root(), lower, "c1");
}

BOOST_AUTO_TEST_CASE(capture_records_deletions_and_replacements) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");

    TreeBuilder m(mounted);
    m.remove("etc/passwd").remove("tree").remove("var/log/old.log").remove("opt/own");
    m.remove("usr/lib").file("usr/lib", "a file now");
    m.remove("etc/hosts").dir("etc/hosts").file("etc/hosts/inside", "i");
    m.remove("pipe").dir("pipe").dir("pipe/deeper");
    m.remove("data/linked2");
    strata::capture(mounted, lower, upper.root());

    Manifest up = scan_upper(upper.root());
    for (const char* p : {"etc/passwd", "tree", "var/log/old.log", "opt/own", "data/linked2"}) {
        BOOST_TEST(is_whiteout_entry(up, p), p);
    }
    BOOST_TEST(!has(up, "tree/a"));
    BOOST_TEST(!has(up, "data/linked1"));  // its remaining group is unchanged
    BOOST_TEST(entry(up, "usr/lib").type == 'f');
    BOOST_TEST(entry(up, "etc/hosts").type == 'd');
    BOOST_TEST(opaque_value(upper.at("etc/hosts")) == "y");
    BOOST_TEST(has(up, "etc/hosts/inside"));
    BOOST_TEST(opaque_value(upper.at("pipe")) == "y");
    BOOST_TEST(has(up, "pipe/deeper"));
    BOOST_TEST(opaque_value(upper.at("pipe/deeper")).empty());
    BOOST_TEST(opaque_value(upper.at("etc")).empty());
    check_capture(tmp, mounted, upper.root(), lower, "c1");
}

BOOST_AUTO_TEST_CASE(capture_keeps_hard_links) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");

    TreeBuilder m(mounted);
    m.file("data/linked1", "rewritten through one name");  // both names see it
    m.hardlink("etc/passwd-link", "etc/passwd");           // a new name for a lower file
    m.dir("new").file("new/one", "1").hardlink("new/two", "new/one");
    strata::capture(mounted, lower, upper.root());

    Manifest up = scan_upper(upper.root());
    BOOST_TEST(entry(up, "data/linked2").link_group == "data/linked1");
    BOOST_TEST(entry(up, "etc/passwd-link").link_group == "etc/passwd");
    BOOST_TEST(entry(up, "new/two").link_group == "new/one");
    BOOST_TEST(entry(up, "data/linked1").sha256 == sha("rewritten through one name"));
    check_capture(tmp, mounted, upper.root(), lower, "c1");
}

BOOST_AUTO_TEST_CASE(capture_splits_a_lower_hard_link_group) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");

    // An equal but separate file in place of one name of a lower group:
    // neither name may be left to the lower layer, which links them.
    TreeBuilder m(mounted);
    struct stat st = lstat_of(m.at("data/linked1"));
    m.remove("data/linked2").file("data/linked2", "linked", 0644);
    m.mtime("data/linked2", st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    strata::capture(mounted, lower, upper.root());

    Manifest up = scan_upper(upper.root());
    BOOST_TEST(entry(up, "data/linked1").link_group == "data/linked1");
    BOOST_TEST(entry(up, "data/linked2").link_group == "data/linked2");
    check_capture(tmp, mounted, upper.root(), lower, "c1");
}

BOOST_AUTO_TEST_CASE(capture_drops_what_a_later_session_undid) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");

    fs::path first = mount_copy(tmp, upper.root(), lower, "mnt1");
    TreeBuilder m1(first);
    m1.file("added.txt", "a").dir("added-dir").file("added-dir/x", "x");
    m1.file("etc/passwd", "changed").remove("etc/hosts").remove("tree");
    m1.remove("pipe").file("pipe", "was a fifo");
    strata::capture(first, lower, upper.root());
    Manifest up1 = scan_upper(upper.root());
    BOOST_TEST(has(up1, "added.txt"));
    BOOST_TEST(is_whiteout_entry(up1, "etc/hosts"));

    fs::path second = mount_copy(tmp, upper.root(), lower, "mnt2");
    expect_same(strata::test::scan_tree(first), strata::test::scan_tree(second), "session 2");
    TreeBuilder m2(second);
    m2.remove("added.txt").remove("added-dir").file("etc/hosts", "back again\n");
    // Put etc/passwd back exactly as the lower chain has it.
    fs::path orig = lower[1] / "etc" / "passwd";
    struct stat os = lstat_of(orig);
    m2.file("etc/passwd", "root:x:0:0\n", 0644)
        .mtime("etc/passwd", os.st_mtim.tv_sec, os.st_mtim.tv_nsec);
    strata::capture(second, lower, upper.root());

    Manifest up2 = scan_upper(upper.root());
    BOOST_TEST(!has(up2, "added.txt"));
    BOOST_TEST(!has(up2, "added-dir"));
    BOOST_TEST(!has(up2, "etc/passwd"));
    BOOST_TEST(entry(up2, "etc/hosts").type == 'f');
    BOOST_TEST(is_whiteout_entry(up2, "tree"));
    BOOST_TEST(entry(up2, "pipe").type == 'f');
    check_capture(tmp, second, upper.root(), lower, "c2");
}

BOOST_AUTO_TEST_CASE(capture_twice_is_idempotent) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");
    TreeBuilder m(mounted);
    m.file("etc/new", "n").remove("tree").chmod("usr/bin/tool", 0711).remove("opt");
    m.dir("opt").file("opt/again", "a");
    strata::capture(mounted, lower, upper.root());
    strata::test::ManifestOptions no_mtime;
    no_mtime.mtime = false;
    Manifest once = strata::test::scan_tree(upper.root(), no_mtime);
    BOOST_TEST(once.size() > 5u);

    strata::capture(mounted, lower, upper.root());
    expect_same(once, strata::test::scan_tree(upper.root(), no_mtime), "same tree captured twice");
    fs::path remount = mount_copy(tmp, upper.root(), lower, "mnt2");
    strata::capture(remount, lower, upper.root());
    expect_same(once, strata::test::scan_tree(upper.root(), no_mtime), "unchanged remount");
    check_capture(tmp, mounted, upper.root(), lower, "c3");
}

BOOST_AUTO_TEST_CASE(capture_without_lower_copies_everything) {
    TempDir tmp("strata-copy");
    TreeBuilder mounted(tmp / "mnt");
    mounted.dir("d", 0750).file("d/f", "f", 04755).symlink("l", "d/f").hardlink("d/g", "d/f");
    mounted.fifo("p").stamp(1'650'000'000);
    TreeBuilder upper(tmp / "upper");
    strata::capture(mounted.root(), {}, upper.root());
    expect_same(strata::test::scan_tree(mounted.root()), strata::test::scan_tree(upper.root()),
                "base layer");
}

BOOST_AUTO_TEST_CASE(capture_discards_a_leftover_of_an_interrupted_capture) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");
    TreeBuilder leftover(tmp / "upper.capture-tmp");
    leftover.file("junk", "from a crash").dir("half");
    TreeBuilder(mounted).file("new", "n");
    strata::capture(mounted, lower, upper.root());
    Manifest up = scan_upper(upper.root());
    BOOST_TEST(has(up, "new"));
    BOOST_TEST(!has(up, "junk"));
    check_capture(tmp, mounted, upper.root(), lower, "c1");
}

BOOST_AUTO_TEST_CASE(capture_refuses_a_device_that_reads_as_a_whiteout) {
    TempDir tmp("strata-copy");
    std::vector<fs::path> lower = build_lower(tmp);
    TreeBuilder upper(tmp / "upper");
    upper.file("earlier", "kept");
    fs::path mounted = mount_copy(tmp, upper.root(), lower, "mnt");
    TreeBuilder(mounted).device("zero-zero", 'c', 0, 0);
    Manifest before = scan_upper(upper.root());
    BOOST_CHECK_THROW(strata::capture(mounted, lower, upper.root()), strata::Error);
    expect_same(before, scan_upper(upper.root()), "upper untouched after a failed capture");
    BOOST_TEST(!fs::exists(tmp / "upper.capture-tmp"));
}
