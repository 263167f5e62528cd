#define BOOST_TEST_MODULE hostile_links
// Hostile symlinks, hard links, special files and attributes, through the
// strata binary. The base layer of HostileStore holds `lib` -> the canary
// directory, `victim` -> the canary's file and `up` -> "../../../..";
// every case checks that the canary, the base layer and the store are
// untouched (tests/support/hostile.h) besides its own expectations.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "tests/support/hostile.h"
#include "tests/support/tar_builder.h"

namespace fs = std::filesystem;
using namespace strata::test;

namespace {

bool present(const fs::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
}

struct stat lst(const fs::path& p) {
    struct stat st {};
    BOOST_REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, "lstat " << p);
    return st;
}

// The value of the xattr `name` of `p` (not followed), or "<none>".
std::string xattr(const fs::path& p, const std::string& name) {
    char buf[256];
    ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
    if (n < 0) return "<none>";
    return std::string(buf, static_cast<size_t>(n));
}

std::string capability() {
    // Revision 2, CAP_NET_BIND_SERVICE effective and permitted.
    const unsigned char v[20] = {0x01, 0, 0, 0x02, 0, 0x04, 0, 0, 0, 0,
                                 0,    0, 0, 0,    0, 0,    0, 0, 0, 0};
    return std::string(reinterpret_cast<const char*>(v), sizeof v);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(symlinks)

BOOST_AUTO_TEST_CASE(entries_through_a_symlink_of_the_same_layer_are_refused) {
    HostileStore s;
    std::string out = s.canary().string();
    const std::string why = "parent 's' is a symlink, not a directory";
    expect_refused(s, "l1", TarBuilder().symlink("s", out).file("s/new", "x").finish(),
                   "layer tar entry 's/new': " + why);
    expect_refused(s, "l2", TarBuilder().symlink("s", out).dir("s/sub").finish(),
                   "layer tar entry 's/sub': " + why);
    expect_refused(s, "l3", TarBuilder().symlink("s", out).symlink("s/l", "/etc").finish(),
                   "layer tar entry 's/l': " + why);
    expect_refused(s, "l4", TarBuilder().symlink("s", out).device("s/null", 'c', 1, 3).finish(),
                   "layer tar entry 's/null': " + why);
    expect_refused(s, "l5", TarBuilder().symlink("s", ".").file("s/x", "x").finish(),
                   "layer tar entry 's/x': " + why);
    BOOST_TEST(!present(s.canary() / "new"));
}

BOOST_AUTO_TEST_CASE(a_lower_symlink_is_replaced_not_followed) {
    HostileStore s;
    // Docker's overlay2 does the same: the needed directory is made in this
    // layer, where it hides the lower symlink.
    std::string tar = TarBuilder()
                          .file("lib/new", "mine")
                          .file("up/x", "mine too")
                          .file("victim", "not the canary")
                          .finish();
    fs::path l = expect_applied(s, "over", tar);
    BOOST_TEST(S_ISDIR(lst(l / "lib").st_mode));
    BOOST_TEST(read_bytes(l / "lib/new") == "mine");
    BOOST_TEST(read_bytes(l / "up/x") == "mine too");
    BOOST_TEST(S_ISREG(lst(l / "victim").st_mode));
    BOOST_TEST(!present(s.canary() / "new"));
    BOOST_TEST(read_bytes(s.canary() / "file.txt") == "precious");
}

BOOST_AUTO_TEST_CASE(deferred_directory_metadata_never_follows_a_later_symlink) {
    HostileStore s;
    // "d" gets its mode and times after the last entry; by then it is a
    // symlink to the canary, whose own metadata must stay as it is. "dir"
    // is the base layer's: made here with lower metadata, then replaced.
    std::string tar = TarBuilder()
                          .dir("d", {.mode = 0700, .mtime = 1})
                          .dir("d/sub", {.mode = 0711, .mtime = 2})
                          .symlink("d", s.canary().string())
                          .file("dir/new", "x")
                          .symlink("dir", (s.canary() / "dir").string())
                          .finish();
    fs::path l = expect_applied(s, "later", tar);
    BOOST_TEST(S_ISLNK(lst(l / "d").st_mode));
    BOOST_TEST(S_ISLNK(lst(l / "dir").st_mode));
    BOOST_TEST((lst(s.canary()).st_mode & 07777) != 0700u);
}

BOOST_AUTO_TEST_CASE(the_mounted_view_keeps_links_inside) {
    // `get` shows the chain (overlayfs or a copy, by STRATA_MOUNT_MODE); the
    // view holds the links as links and the canary is never written.
    HostileStore s;
    std::string tar = TarBuilder()
                          .file("lib/new", "mine")
                          .symlink("s", s.canary().string())
                          .hardlink("hv", "victim")
                          .device("dev/null", 'c', 1, 3)
                          .whiteout("etc/passwd")
                          .finish();
    expect_applied(s, "top", tar);
    StoreState before = s.state();
    Outcome got = s.run({"get", "top"});
    BOOST_TEST_REQUIRE(got.exit_code == 0, got.err);
    fs::path view = last_line(got.out);
    BOOST_TEST(read_bytes(view / "lib/new") == "mine");
    BOOST_TEST(S_ISDIR(lst(view / "lib").st_mode));
    BOOST_TEST(fs::read_symlink(view / "s") == s.canary());
    BOOST_TEST(S_ISLNK(lst(view / "hv").st_mode));
    BOOST_TEST(S_ISCHR(lst(view / "dev/null").st_mode));
    BOOST_TEST(!present(view / "etc/passwd"));
    BOOST_TEST(read_bytes(view / "dir/a") == "a");
    BOOST_TEST(s.run({"put", "top"}).exit_code == 0);
    StoreState after = s.state();
    auto diffs = compare_manifests(before.trees["canary"], after.trees["canary"]);
    BOOST_TEST(diffs.empty(), format_differences(diffs));
    BOOST_TEST(before.diffs == after.diffs);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(hard_links)

BOOST_AUTO_TEST_CASE(targets_outside_later_or_missing_are_refused) {
    HostileStore s;
    expect_refused(s, "h1", TarBuilder().hardlink("h", "../x").finish(),
                   "layer tar entry 'h': hard link target '../x' escapes the layer");
    expect_refused(s, "h2", TarBuilder().hardlink("h", "dir/../../x").finish(),
                   "layer tar entry 'h': hard link target 'dir/../../x' escapes the layer");
    expect_refused(s, "h3", TarBuilder().hardlink("h", "later").file("later", "x").finish(),
                   "layer tar entry 'h': hard link target 'later' does not exist");
    expect_refused(s, "h4", TarBuilder().hardlink("h", "missing").finish(),
                   "layer tar entry 'h': hard link target 'missing' does not exist");
    // Through the base layer's symlink to the canary: not in the layer.
    expect_refused(s, "h5", TarBuilder().hardlink("h", "lib/file.txt").finish(),
                   "layer tar entry 'h': hard link target 'lib/file.txt' does not exist");
    expect_refused(s, "h6", TarBuilder().hardlink("h", "dir").finish(),
                   "layer tar entry 'h': hard link target 'dir' is a directory");
    expect_refused(s, "h7", TarBuilder().hardlink("h", "/").finish(),
                   "layer tar entry 'h': hard link target is the layer root");
}

BOOST_AUTO_TEST_CASE(absolute_targets_are_root_relative) {
    HostileStore s;
    std::string tar = TarBuilder().file("etc/x", "x").hardlink("h", "/etc/x").finish();
    fs::path l = expect_applied(s, "abs", tar);
    BOOST_TEST(lst(l / "h").st_ino == lst(l / "etc/x").st_ino);

    // The canary's absolute path means the layer's own (absent) copy of it.
    std::string canary_file = (s.canary() / "file.txt").string();
    expect_refused(
        s, "abs2", TarBuilder().hardlink("h", canary_file).finish(),
        "layer tar entry 'h': hard link target '" + canary_file.substr(1) + "' does not exist");
}

BOOST_AUTO_TEST_CASE(links_to_symlinks_link_the_symlink) {
    HostileStore s;
    // A hard link to a symlink is a second name of the symlink itself; the
    // mode bits of the link entry apply to nothing (symlinks have none and
    // hard-link entries carry no metadata of their own).
    std::string bin = (s.canary() / "setuid-bin").string();
    std::string tar = TarBuilder()
                          .symlink("s", bin, {.mode = 04777})
                          .hardlink("h", "s", {.mode = 06777})
                          .hardlink("hv", "victim", {.mode = 0777})
                          .finish();
    fs::path l = expect_applied(s, "ls", tar);
    BOOST_TEST(S_ISLNK(lst(l / "h").st_mode));
    BOOST_TEST(lst(l / "h").st_ino == lst(l / "s").st_ino);
    BOOST_TEST(fs::read_symlink(l / "h") == bin);
    // "victim" only the base layer has: copied up as a symlink, then linked.
    BOOST_TEST(S_ISLNK(lst(l / "hv").st_mode));
    BOOST_TEST(lst(l / "hv").st_ino == lst(l / "victim").st_ino);
    BOOST_TEST((lst(bin).st_mode & 07777) == 04755u);
    BOOST_TEST((lst(s.canary() / "file.txt").st_mode & 07777) == 0644u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(special_files)

BOOST_AUTO_TEST_CASE(device_nodes_are_layer_data) {
    HostileStore s;
    // As root, devices are made with mknodat in the layer and never opened;
    // a later entry of the same name replaces the node, it never writes
    // into it. A device entry under the base layer's symlink lands in a
    // directory of this layer.
    std::string tar = TarBuilder()
                          .device("dev/null", 'c', 1, 3, {.mode = 0666})
                          .device("dev/sda", 'b', 8, 0, {.mode = 0660, .gid = 6})
                          .device("dev/zero", 'c', 1, 5)
                          .file("dev/zero", "a file now")
                          .device("lib/null", 'c', 1, 3)
                          .fifo("dev/fifo", {.mode = 0600})
                          .finish();
    fs::path l = expect_applied(s, "dev", tar);
    struct stat st = lst(l / "dev/null");
    BOOST_TEST(S_ISCHR(st.st_mode));
    BOOST_TEST(st.st_rdev == makedev(1, 3));
    BOOST_TEST((st.st_mode & 07777) == 0666u);
    st = lst(l / "dev/sda");
    BOOST_TEST(S_ISBLK(st.st_mode));
    BOOST_TEST(st.st_rdev == makedev(8, 0));
    BOOST_TEST(st.st_gid == 6u);
    BOOST_TEST(read_bytes(l / "dev/zero") == "a file now");
    BOOST_TEST(S_ISCHR(lst(l / "lib/null").st_mode));
    BOOST_TEST(S_ISFIFO(lst(l / "dev/fifo").st_mode));
    BOOST_TEST(!present(s.canary() / "null"));
    BOOST_TEST(S_ISCHR(lst("/dev/null").st_mode));
}

BOOST_AUTO_TEST_CASE(a_char_device_0_0_is_a_whiteout) {
    HostileStore s;
    // The overlay form's whiteout: it deletes the name from the lower chain,
    // and `diff` writes it back as an OCI whiteout.
    fs::path l = expect_applied(s, "wh", TarBuilder().device("etc/passwd", 'c', 0, 0).finish());
    BOOST_TEST(lst(l / "etc/passwd").st_rdev == makedev(0, 0));
    Outcome diff = s.run({"diff", "wh"});
    BOOST_TEST(diff.out.find("etc/.wh.passwd") != std::string::npos);
    Outcome changes = s.run({"changes", "wh", "--json"});
    BOOST_TEST(changes.out.find("\"delete\"") != std::string::npos, changes.out);
}

BOOST_AUTO_TEST_CASE(setuid_bits_are_kept_but_never_applied_through_a_link) {
    HostileStore s;
    std::string bin = (s.canary() / "setuid-bin").string();
    std::string tar = TarBuilder()
                          .file("bin/su", "su", {.mode = 04755})
                          .file("bin/wall", "wall", {.mode = 02755, .uid = 1000, .gid = 5})
                          .file("bin/both", "x", {.mode = 06711, .uid = 42})
                          .symlink("bin/evil", bin, {.mode = 06777})
                          .hardlink("bin/evil2", "bin/evil", {.mode = 06777})
                          .finish();
    fs::path l = expect_applied(s, "suid", tar);
    BOOST_TEST((lst(l / "bin/su").st_mode & 07777) == 04755u);
    BOOST_TEST((lst(l / "bin/wall").st_mode & 07777) == 02755u);
    BOOST_TEST(lst(l / "bin/wall").st_uid == 1000u);
    BOOST_TEST((lst(l / "bin/both").st_mode & 07777) == 06711u);
    BOOST_TEST((lst(bin).st_mode & 07777) == 04755u);
}

BOOST_AUTO_TEST_CASE(xattr_policy) {
    HostileStore s;
    // Kept: security.capability, user.*, other trusted.* names. Dropped with
    // a warning: trusted.overlay.* and user.overlay.* (overlayfs structure)
    // and the other security.* names (the host's labels).
    std::vector<std::pair<std::string, std::string>> xattrs = {
        {"security.capability", capability()},
        {"user.note", "hi"},
        {"trusted.other", "1"},
        {"trusted.overlay.opaque", "y"},
        {"trusted.overlay.redirect", "/etc"},
        {"user.overlay.opaque", "y"},
        {"security.selinux", "system_u:object_r:shadow_t:s0"},
        {"security.ima", "\x03\x02"},
    };
    std::string tar = TarBuilder()
                          .file("f", "x", {.mode = 0755, .xattrs = xattrs})
                          .dir("dir", {.xattrs = {{"trusted.overlay.opaque", "y"}}})
                          .finish();
    Outcome before = s.run({"ls", "--json"});
    fs::path l = expect_applied(s, "x", tar);
    BOOST_TEST(xattr(l / "f", "security.capability") == capability());
    BOOST_TEST(xattr(l / "f", "user.note") == "hi");
    BOOST_TEST(xattr(l / "f", "trusted.other") == "1");
    for (const char* gone : {"trusted.overlay.opaque", "trusted.overlay.redirect",
                             "user.overlay.opaque", "security.selinux", "security.ima"}) {
        BOOST_TEST(xattr(l / "f", gone) == "<none>", gone);
    }
    // The directory is not opaque: the base layer's dir/a still shows.
    BOOST_TEST(xattr(l / "dir", "trusted.overlay.opaque") == "<none>");
    Outcome changes = s.run({"changes", "x", "--json"});
    BOOST_TEST(changes.out.find("/dir/a") == std::string::npos, changes.out);

    // The warnings name the entry and the attribute.
    Outcome again = s.apply("x2", tar);
    BOOST_TEST(again.exit_code == 0);
    BOOST_TEST(again.err.find("strata: warning: layer tar entry 'f': dropped xattr "
                              "trusted.overlay.opaque (overlayfs would read it as layer "
                              "structure)") != std::string::npos,
               again.err);
    BOOST_TEST(
        again.err.find("layer tar entry 'f': dropped xattr security.selinux (security "
                       "labels and integrity data are the host's to set)") != std::string::npos,
        again.err);
    BOOST_TEST(again.err.find("layer tar entry 'dir': dropped xattr trusted.overlay.opaque") !=
               std::string::npos);
    Outcome files = s.run({"files", "x2", "--json"});
    BOOST_TEST(files.out.find("security.selinux") == std::string::npos);
    BOOST_TEST(files.out.find("security.capability") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
