#define BOOST_TEST_MODULE hostile_names
// Hostile entry names, whiteouts and duplicate entries, through the strata
// binary: each archive is either refused with its exact message, leaving
// the store, the canary and the base layer as they were, or applied exactly
// as docs/security.md says, touching nothing outside the new layer. Every
// run is under RLIMIT_AS (tests/support/hostile.h).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
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

bool is_whiteout(const fs::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// The content of `rel` below `root`, reached one component at a time
// (the full path may be longer than PATH_MAX).
std::string read_at(const fs::path& root, const std::string& rel) {
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
    BOOST_REQUIRE(fd >= 0);
    size_t pos = 0;
    for (size_t slash; (slash = rel.find('/', pos)) != std::string::npos; pos = slash + 1) {
        int next =
            ::openat(fd, rel.substr(pos, slash - pos).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        ::close(fd);
        BOOST_REQUIRE_MESSAGE(next >= 0, "cannot open a directory of " << rel.size() << " bytes");
        fd = next;
    }
    int file = ::openat(fd, rel.substr(pos).c_str(), O_RDONLY | O_NOFOLLOW);
    ::close(fd);
    BOOST_REQUIRE(file >= 0);
    char buf[256];
    ssize_t n = ::read(file, buf, sizeof buf);
    ::close(file);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

// The content of the entry `name` in the uncompressed tar `tar` ("?" when
// it has none).
std::string tar_content(const std::string& tar, const std::string& name) {
    struct archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_open_memory(a, tar.data(), tar.size());
    std::string found = "?";
    struct archive_entry* e = nullptr;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        if (archive_entry_pathname(e) != name) continue;
        found.assign(static_cast<size_t>(archive_entry_size(e)), '\0');
        archive_read_data(a, found.data(), found.size());
    }
    archive_read_free(a);
    return found;
}

// A name of exactly `size` bytes: "d/d/.../f…".
std::string deep_name(size_t size) {
    std::string name;
    while (name.size() + 2 < size) name += "d/";
    return name + std::string(size - name.size(), 'f');
}

}  // namespace

BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(absolute_names_are_root_relative) {
    HostileStore s;
    std::string canary_file = (s.canary() / "file.txt").string();
    std::string tar =
        TarBuilder().file("/etc/hostname", "box\n").file(canary_file, "overwritten?").finish();
    fs::path l = expect_applied(s, "abs", tar);
    BOOST_TEST(read_bytes(l / "etc/hostname") == "box\n");
    BOOST_TEST(read_bytes(l / canary_file.substr(1)) == "overwritten?");
    BOOST_TEST(read_bytes(s.canary() / "file.txt") == "precious");
}

BOOST_AUTO_TEST_CASE(dotdot_components_are_refused) {
    HostileStore s;
    expect_refused(s, "up1", TarBuilder().file("../escape", "x").finish(),
                   "layer tar entry '../escape': path escapes the layer");
    expect_refused(s, "up2", TarBuilder().dir("a").file("a/../../escape", "x").finish(),
                   "layer tar entry 'a/../../escape': path escapes the layer");
    // Even a ".." that stays inside is refused: names are never resolved.
    expect_refused(s, "up3", TarBuilder().dir("a").file("a/../b", "x").finish(),
                   "layer tar entry 'a/../b': path escapes the layer");
    expect_refused(s, "up4", TarBuilder().dir("..").finish(),
                   "layer tar entry '../': path escapes the layer");
    BOOST_TEST(!present(s.dir() / "escape"));
    BOOST_TEST(!present(s.root() / "escape"));
}

BOOST_AUTO_TEST_CASE(the_root_can_only_be_a_directory) {
    HostileStore s;
    const std::string msg = "only a directory can be the layer root";
    expect_refused(s, "e1", raw::file("", "x") + raw::end(), "layer tar entry '': " + msg);
    expect_refused(s, "e2", TarBuilder().symlink(".", s.canary().string()).finish(),
                   "layer tar entry '.': " + msg);
    expect_refused(s, "e3", TarBuilder().symlink("/", s.canary().string()).finish(),
                   "layer tar entry '/': " + msg);
    expect_refused(
        s, "e4", raw::header({.name = "./", .type = '2', .link = s.canary().string()}) + raw::end(),
        "layer tar entry './': " + msg);
    expect_refused(s, "e5", TarBuilder().hardlink(".", "etc/passwd").finish(),
                   "layer tar entry '.': " + msg);

    // As a directory, "." gives the layer root its metadata.
    fs::path l = expect_applied(s, "e6", TarBuilder().dir(".", {.mode = 0750, .uid = 7}).finish());
    BOOST_TEST((lst(l).st_mode & 07777) == 0750u);
    BOOST_TEST(lst(l).st_uid == 7u);
}

BOOST_AUTO_TEST_CASE(backslashes_are_ordinary_bytes) {
    HostileStore s;
    std::string tar =
        TarBuilder().file("a\\b", "1").file("..\\..\\escape", "2").file("dir\\", "3").finish();
    fs::path l = expect_applied(s, "bs", tar);
    BOOST_TEST(read_bytes(l / "a\\b") == "1");
    BOOST_TEST(read_bytes(l / "..\\..\\escape") == "2");
    BOOST_TEST(read_bytes(l / "dir\\") == "3");
    BOOST_TEST(!present(l / "a"));
    BOOST_TEST(!present(s.dir() / "escape"));
}

BOOST_AUTO_TEST_CASE(names_are_bytes_not_text) {
    HostileStore s;
    // The same two names in ustar headers and in PAX path records.
    std::string tar = raw::file("n\xff", "ff") + raw::file("n\xfe", "fe") +
                      raw::pax({{"path", "p\xff"}}) + raw::file("ignored1", "pff") +
                      raw::pax({{"path", "p\xfe"}}) + raw::file("ignored2", "pfe") +
                      raw::file("tab\tand\nnewline", "ctl") + raw::end();
    fs::path l = expect_applied(s, "bytes", tar);
    BOOST_TEST(read_bytes(l / "n\xff") == "ff");
    BOOST_TEST(read_bytes(l / "n\xfe") == "fe");
    BOOST_TEST(read_bytes(l / "p\xff") == "pff");
    BOOST_TEST(read_bytes(l / "p\xfe") == "pfe");
    BOOST_TEST(read_bytes(l / "tab\tand\nnewline") == "ctl");
    BOOST_TEST(!present(l / "ignored1"));

    // The exported diff keeps the bytes: applied again it gives the same tree.
    Outcome diff = s.run({"diff", "bytes"});
    BOOST_TEST_REQUIRE(diff.exit_code == 0);
    fs::path again = expect_applied(s, "bytes-again", diff.out, false);
    auto diffs =
        compare_manifests(scan_tree(l, {.mtime = false}), scan_tree(again, {.mtime = false}));
    BOOST_TEST(diffs.empty(), format_differences(diffs));
}

BOOST_AUTO_TEST_CASE(control_bytes_in_names_are_escaped_in_messages) {
    HostileStore s;
    expect_refused(s, "ctl", TarBuilder().file("bad\nline/../x", "x").finish(),
                   "layer tar entry 'bad\\x0aline/../x': path escapes the layer");
}

BOOST_AUTO_TEST_CASE(over_long_component_is_refused) {
    HostileStore s;
    std::string long_comp(256, 'a');
    expect_refused(s, "long",
                   raw::pax({{"path", "dir/" + long_comp}}) + raw::file("x", "1") + raw::end(),
                   "layer tar entry 'dir/" + long_comp + "': component '" + long_comp +
                       "' is 256 bytes, more than the 255 a file name may have");
    expect_refused(s, "long-link", TarBuilder().file("t", "1").hardlink("h", long_comp).finish(),
                   "layer tar entry 'h': component '" + long_comp +
                       "' is 256 bytes, more than the 255 a file name may have");

    std::string fits(255, 'b');
    fs::path l = expect_applied(s, "fits", TarBuilder().file("dir/" + fits, "ok").finish());
    BOOST_TEST(read_bytes(l / "dir" / fits) == "ok");
}

BOOST_AUTO_TEST_CASE(paths_deeper_than_path_max) {
    HostileStore s;
    // 4095 bytes is the longest name; with the store's path in front it is
    // longer than PATH_MAX on disk, and it is applied through the *at walk
    // (over the base layer, whose lookups walk the same way).
    std::string longest = deep_name(4095);
    fs::path l = expect_applied(s, "deep", TarBuilder().file(longest, "deep").finish());
    BOOST_TEST((l.string().size() + 1 + longest.size()) > size_t{PATH_MAX});
    BOOST_TEST(read_at(l, longest) == "deep");

    // LIMITATION: `get` of this layer fails in the copy mount mode with
    // "File name too long" (engine/copy_mount.cpp resolves full paths;
    // walking by descriptor would lift it), so the view is not mounted here.

    // `diff` walks by descriptor too: the exported tar holds the file.
    Outcome diff = s.run({"diff", "deep"});
    BOOST_TEST_REQUIRE(diff.exit_code == 0, diff.err);
    BOOST_TEST(tar_content(diff.out, longest) == "deep");

    // One byte more is refused, never cut short.
    std::string too_long = deep_name(4096);
    expect_refused(s, "deeper", TarBuilder().file(too_long, "x").finish(),
                   "layer tar entry '" + too_long.substr(0, 200) +
                       "...[4096 bytes]': the name is 4096 bytes, more than the 4095 a path may "
                       "have");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(whiteouts)

BOOST_AUTO_TEST_CASE(whiteouts_naming_nothing_are_refused) {
    HostileStore s;
    for (const std::string name : {".wh.", ".wh..", ".wh...", "dir/.wh..", "dir/.wh..."}) {
        expect_refused(s, "wh", raw::file(name, "") + raw::end(),
                       "layer tar entry '" + name + "': whiteout names no file");
    }
}

BOOST_AUTO_TEST_CASE(whiteouts_never_go_through_symlinks) {
    HostileStore s;
    // Through a symlink of this layer: refused.
    std::string own =
        TarBuilder().symlink("s", s.canary().string()).whiteout("s/file.txt").finish();
    expect_refused(s, "own", own,
                   "layer tar entry 's/.wh.file.txt': parent 's' is a symlink, not a directory");
    expect_refused(s, "own-opq",
                   TarBuilder().symlink("s", s.canary().string()).opaque("s").finish(),
                   "layer tar entry 's/.wh..wh..opq': parent 's' is a symlink, not a directory");

    // Through the base layer's symlinks (`lib` -> canary, `up` -> ../../../..):
    // the merged tree has no directory there, so the marker changes nothing.
    std::string lower = TarBuilder()
                            .whiteout("lib/file.txt")
                            .opaque("lib")
                            .whiteout("up/etc")
                            .opaque("up/dir")
                            .finish();
    fs::path l = expect_applied(s, "lower", lower);
    BOOST_TEST(!present(l / "lib"));
    BOOST_TEST(!present(l / "up"));
    BOOST_TEST(read_bytes(s.canary() / "file.txt") == "precious");

    // Whiting out the symlink itself hides it and nothing else.
    l = expect_applied(s, "link", TarBuilder().whiteout("lib").finish());
    BOOST_TEST(is_whiteout(l / "lib"));
}

BOOST_AUTO_TEST_CASE(whiteout_of_nothing) {
    HostileStore s;
    // In a directory the merged tree has: a whiteout that hides nothing.
    // In one it lacks: nothing at all, and no directory is made for it.
    std::string tar =
        TarBuilder().whiteout("nothing").whiteout("nodir/x").whiteout("dir/no").finish();
    fs::path l = expect_applied(s, "none", tar);
    BOOST_TEST(is_whiteout(l / "nothing"));
    BOOST_TEST(!present(l / "nodir"));
    BOOST_TEST(is_whiteout(l / "dir/no"));
    Outcome changes = s.run({"changes", "none", "--json"});
    BOOST_TEST(changes.out.find("/nodir") == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(duplicates)

BOOST_AUTO_TEST_CASE(later_entry_wins) {
    HostileStore s;
    std::string victim = (s.canary() / "file.txt").string();
    std::string tar = TarBuilder()
                          .file("f", "one")
                          .file("f", "two")
                          .file("x", "file")
                          .symlink("x", victim)
                          .file("x", "file again")
                          .symlink("y", victim)
                          .dir("y")
                          .file("y/in", "in")
                          .fifo("p")
                          .file("p", "no longer a fifo")
                          .finish();
    fs::path l = expect_applied(s, "dup", tar);
    BOOST_TEST(read_bytes(l / "f") == "two");
    BOOST_TEST(S_ISREG(lst(l / "x").st_mode));
    BOOST_TEST(read_bytes(l / "x") == "file again");
    BOOST_TEST(S_ISDIR(lst(l / "y").st_mode));
    BOOST_TEST(read_bytes(l / "y/in") == "in");
    BOOST_TEST(read_bytes(l / "p") == "no longer a fifo");
    BOOST_TEST(read_bytes(s.canary() / "file.txt") == "precious");
}

BOOST_AUTO_TEST_CASE(file_replaces_a_non_empty_directory) {
    HostileStore s;
    std::string tar = TarBuilder()
                          .dir("d", {.mode = 0700})
                          .dir("d/sub", {.mode = 0711})
                          .file("d/sub/f", "f")
                          .file("d", "now a file", {.mode = 0640})
                          .finish();
    fs::path l = expect_applied(s, "f-over-d", tar);
    BOOST_TEST(S_ISREG(lst(l / "d").st_mode));
    BOOST_TEST((lst(l / "d").st_mode & 07777) == 0640u);
    BOOST_TEST(read_bytes(l / "d") == "now a file");
}

BOOST_AUTO_TEST_CASE(directory_over_directory_merges) {
    HostileStore s;
    // apk writes a directory entry again before each package's files.
    std::string tar = TarBuilder()
                          .dir("usr", {.mode = 0755})
                          .dir("usr/bin", {.mode = 0700, .uid = 1})
                          .file("usr/bin/a", "a")
                          .dir("usr")
                          .dir("usr/bin", {.mode = 0750, .uid = 2, .gid = 3})
                          .file("usr/bin/b", "b")
                          .dir("usr/")
                          .finish();
    fs::path l = expect_applied(s, "apk", tar);
    BOOST_TEST(read_bytes(l / "usr/bin/a") == "a");
    BOOST_TEST(read_bytes(l / "usr/bin/b") == "b");
    struct stat st = lst(l / "usr/bin");
    BOOST_TEST((st.st_mode & 07777) == 0750u);
    BOOST_TEST(st.st_uid == 2u);
    BOOST_TEST(st.st_gid == 3u);
}

BOOST_AUTO_TEST_CASE(hard_link_keeps_the_replaced_file) {
    HostileStore s;
    std::string tar =
        TarBuilder().file("a", "first").hardlink("b", "a").file("a", "second").finish();
    fs::path l = expect_applied(s, "relink", tar);
    BOOST_TEST(read_bytes(l / "a") == "second");
    BOOST_TEST(read_bytes(l / "b") == "first");
    BOOST_TEST(lst(l / "a").st_ino != lst(l / "b").st_ino);
}

BOOST_AUTO_TEST_SUITE_END()
