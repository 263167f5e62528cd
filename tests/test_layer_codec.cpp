#define BOOST_TEST_MODULE layer_codec
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <optional>
#include <sstream>

#include "engine/digest.h"
#include "engine/error.h"
#include "engine/layer_codec.h"
#include "tests/support/fixture.h"
#include "tests/support/tar_builder.h"
#include "tests/support/tree_builder.h"
#include "tests/support/tree_compare.h"

namespace fs = std::filesystem;
using strata::ApplyLimits;
using strata::ApplyResult;
using strata::Change;
using strata::FileRecord;
using strata::test::Compression;
using strata::test::TarBuilder;
using strata::test::TarMeta;
using strata::test::TempDir;

namespace {

// Applies `tar` to a fresh directory `dir` (created) and returns the result.
ApplyResult apply_tar(const std::string& tar, const fs::path& dir,
                      const std::vector<fs::path>& lower = {},
                      std::vector<FileRecord>* records = nullptr, const ApplyLimits& limits = {},
                      size_t chunk = 64 * 1024) {
    fs::create_directories(dir);
    strata::test::StringByteSource src(tar, chunk);
    auto on_entry = [records](const FileRecord& r) {
        if (records != nullptr) records->push_back(r);
    };
    return strata::apply_layer_tar(src, dir, lower, on_entry, limits);
}

// The message of the Error that `f` throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const strata::Error& e) {
        return e.what();
    }
    return "";
}

struct stat lst(const fs::path& p) {
    struct stat st {};
    BOOST_REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, "lstat " << p);
    return st;
}

bool present(const fs::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
}

std::string content(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::optional<std::string> xattr(const fs::path& p, const std::string& name) {
    char buf[512];
    ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
}

bool is_whiteout_at(const fs::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

std::string capability_value() {
    // Revision 2, effective, permitted CAP_NET_BIND_SERVICE.
    const unsigned char v[20] = {0x01, 0, 0, 0x02, 0, 0x04, 0, 0, 0, 0,
                                 0,    0, 0, 0,    0, 0,    0, 0, 0, 0};
    return std::string(reinterpret_cast<const char*>(v), sizeof v);
}

const FileRecord* record_for(const std::vector<FileRecord>& recs, const std::string& path) {
    for (const auto& r : recs) {
        if (r.path == path) return &r;
    }
    return nullptr;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(apply_entries)

std::string typed_tar() {
    return TarBuilder()
        .dir("usr", {.mode = 0755, .mtime = 1'600'000'000})
        .dir("usr/bin", {.mode = 0750, .uid = 3, .gid = 4, .mtime = 1'600'000'100})
        .file("usr/bin/ping", "ELF...",
              {.mode = 04755,
               .uid = 0,
               .gid = 0,
               .mtime = 1'600'000'200,
               .xattrs = {{"security.capability", capability_value()}, {"user.note", "hi"}}})
        .file("usr/bin/sg", "sg", {.mode = 02711, .uid = 1000, .gid = 1001})
        .dir("tmp", {.mode = 01777})
        .symlink("usr/bin/pong", "ping", {.uid = 12, .gid = 13, .mtime = 1'500'000'000})
        .hardlink("usr/bin/ping2", "usr/bin/ping")
        .device("null", 'c', 1, 3, {.mode = 0666})
        .device("loop0", 'b', 7, 0, {.mode = 0660, .gid = 6})
        .fifo("pipe", {.mode = 0600})
        .finish();
}

BOOST_AUTO_TEST_CASE(types_modes_owners_and_xattrs) {
    TempDir tmp("codec");
    std::string tar = typed_tar();
    ApplyResult r = apply_tar(tar, tmp / "l");
    fs::path l = tmp / "l";

    BOOST_TEST(r.entries == 10u);
    BOOST_TEST(r.diff_digest == strata::sha256_digest(tar));
    BOOST_TEST(r.tar_bytes == tar.size());
    BOOST_TEST(r.content_bytes == 8u);

    struct stat ping = lst(l / "usr/bin/ping");
    BOOST_TEST(S_ISREG(ping.st_mode));
    BOOST_TEST((ping.st_mode & 07777) == 04755u);
    BOOST_TEST(ping.st_mtime == 1'600'000'200);
    BOOST_TEST(content(l / "usr/bin/ping") == "ELF...");
    BOOST_TEST(xattr(l / "usr/bin/ping", "security.capability").value_or("") == capability_value());
    BOOST_TEST(xattr(l / "usr/bin/ping", "user.note").value_or("") == "hi");
    BOOST_TEST(ping.st_nlink == 2u);
    BOOST_TEST(lst(l / "usr/bin/ping2").st_ino == ping.st_ino);

    struct stat sg = lst(l / "usr/bin/sg");
    BOOST_TEST((sg.st_mode & 07777) == 02711u);
    BOOST_TEST(sg.st_uid == 1000u);
    BOOST_TEST(sg.st_gid == 1001u);
    BOOST_TEST((lst(l / "tmp").st_mode & 07777) == 01777u);

    struct stat bin = lst(l / "usr/bin");
    BOOST_TEST((bin.st_mode & 07777) == 0750u);
    BOOST_TEST(bin.st_uid == 3u);
    BOOST_TEST(bin.st_gid == 4u);
    BOOST_TEST(bin.st_mtime == 1'600'000'100);  // set after its entries
    BOOST_TEST(lst(l / "usr").st_mtime == 1'600'000'000);

    struct stat pong = lst(l / "usr/bin/pong");
    BOOST_TEST(S_ISLNK(pong.st_mode));
    BOOST_TEST(fs::read_symlink(l / "usr/bin/pong").string() == "ping");
    BOOST_TEST(pong.st_uid == 12u);
    BOOST_TEST(pong.st_mtime == 1'500'000'000);

    struct stat null = lst(l / "null");
    BOOST_TEST(S_ISCHR(null.st_mode));
    BOOST_TEST(null.st_rdev == makedev(1, 3));
    BOOST_TEST((null.st_mode & 07777) == 0666u);
    struct stat loop = lst(l / "loop0");
    BOOST_TEST(S_ISBLK(loop.st_mode));
    BOOST_TEST(loop.st_rdev == makedev(7, 0));
    BOOST_TEST(loop.st_gid == 6u);
    BOOST_TEST(S_ISFIFO(lst(l / "pipe").st_mode));
}

BOOST_AUTO_TEST_CASE(records_describe_each_entry) {
    TempDir tmp("codec");
    std::vector<FileRecord> recs;
    apply_tar(typed_tar(), tmp / "l", {}, &recs);
    BOOST_REQUIRE(recs.size() == 10u);
    const FileRecord* rp = record_for(recs, "usr/bin/ping");
    BOOST_REQUIRE(rp != nullptr);
    BOOST_TEST(rp->type == 'f');
    BOOST_TEST(rp->mode == 04755u);
    BOOST_TEST(rp->size == 6u);
    BOOST_TEST(rp->mtime == 1'600'000'200);
    BOOST_TEST(rp->xattrs_json ==
               R"({"security.capability":"AQAAAgAEAAAAAAAAAAAAAAAAAAA=","user.note":"aGk="})");
    BOOST_TEST(record_for(recs, "usr/bin/ping2")->type == 'h');
    BOOST_TEST(record_for(recs, "usr/bin/ping2")->link_target == "usr/bin/ping");
    BOOST_TEST(record_for(recs, "usr/bin/pong")->link_target == "ping");
    BOOST_TEST(record_for(recs, "loop0")->type == 'b');
    BOOST_TEST(record_for(recs, "loop0")->dev_major == 7u);
    BOOST_TEST(record_for(recs, "pipe")->type == 'p');
    BOOST_TEST(record_for(recs, "usr")->xattrs_json == "");
    BOOST_TEST(record_for(recs, "usr")->type == 'd');
    BOOST_TEST(record_for(recs, "usr/bin/pong")->type == 'l');
    BOOST_TEST(record_for(recs, "null")->type == 'c');
    BOOST_TEST(record_for(recs, "null")->dev_minor == 3u);
    BOOST_TEST(recs.front().path == "usr");  // archive order
    BOOST_TEST(recs.back().path == "pipe");
}

BOOST_AUTO_TEST_CASE(names_are_normalised_and_root_entry_applies_to_the_root) {
    TempDir tmp("codec");
    std::string tar = TarBuilder()
                          .dir("./", {.mode = 0700, .mtime = 1'234'567'890})
                          .file("/abs/file", "a")
                          .file("./dot//double", "b")
                          .finish();
    std::vector<FileRecord> recs;
    apply_tar(tar, tmp / "l", {}, &recs);
    BOOST_TEST(content(tmp / "l/abs/file") == "a");
    BOOST_TEST(content(tmp / "l/dot/double") == "b");
    struct stat root = lst(tmp / "l");
    BOOST_TEST((root.st_mode & 07777) == 0700u);
    BOOST_TEST(root.st_mtime == 1'234'567'890);
    BOOST_REQUIRE(recs.size() == 3u);
    BOOST_TEST(recs[0].path == ".");
    BOOST_TEST(recs[1].path == "abs/file");
    BOOST_TEST(recs[2].path == "dot/double");
    // A missing parent with no lower layer is 0755 root.
    BOOST_TEST((lst(tmp / "l/abs").st_mode & 07777) == 0755u);
}

BOOST_AUTO_TEST_CASE(long_and_unicode_names_in_pax_and_gnu) {
    std::string dir(120, 'd');
    std::string name = dir + "/" + std::string(130, 'n') + ".txt";
    std::string uni = "caf\xc3\xa9 au lait/\xe2\x98\x83 snow man.txt";
    for (auto format : {TarBuilder::Format::Pax, TarBuilder::Format::Gnu}) {
        TempDir tmp("codec");
        std::string link_target = std::string(110, 't');
        std::string tar = TarBuilder(format)
                              .file(name, "long")
                              .file(uni, "unicode")
                              .symlink("s", link_target)
                              .hardlink("hl", name)
                              .finish();
        apply_tar(tar, tmp / "l");
        BOOST_TEST(content(tmp / "l" / name) == "long");
        BOOST_TEST(content(tmp / "l" / uni) == "unicode");
        BOOST_TEST(fs::read_symlink(tmp / "l/s").string() == link_target);
        BOOST_TEST(lst(tmp / "l/hl").st_ino == lst(tmp / "l" / name).st_ino);
    }
}

BOOST_AUTO_TEST_CASE(sparse_file_keeps_holes) {
    TempDir tmp("codec");
    const uint64_t size = 64ull << 20;
    std::string tar =
        TarBuilder().sparse_file("disk.img", size, {{0, "head"}, {32ull << 20, "middle"}}).finish();
    BOOST_TEST(tar.size() < 64u * 1024);
    ApplyResult r = apply_tar(tar, tmp / "l");
    struct stat st = lst(tmp / "l/disk.img");
    BOOST_TEST(static_cast<uint64_t>(st.st_size) == size);
    BOOST_TEST(st.st_blocks * 512 < 1 << 20);  // holes stayed holes
    BOOST_TEST(r.content_bytes == 10u);
    std::string data = content(tmp / "l/disk.img");
    BOOST_TEST(data.substr(0, 4) == "head");
    BOOST_TEST(data.substr(32ull << 20, 6) == "middle");
    BOOST_TEST(data.find_first_not_of('\0', 4) == (32ull << 20));
    BOOST_TEST(data.find_first_not_of('\0', (32ull << 20) + 6) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(later_entry_replaces_earlier) {
    TempDir tmp("codec");
    std::string tar = TarBuilder()
                          .file("f", "first")
                          .hardlink("g", "f")
                          .file("f", "second")
                          .dir("d")
                          .file("d/inner", "x")
                          .file("d", "now a file")
                          .symlink("s", "x")
                          .dir("s", {.mode = 0710})
                          .finish();
    apply_tar(tar, tmp / "l");
    BOOST_TEST(content(tmp / "l/f") == "second");
    BOOST_TEST(content(tmp / "l/g") == "first");
    BOOST_TEST(lst(tmp / "l/f").st_ino != lst(tmp / "l/g").st_ino);
    BOOST_TEST(content(tmp / "l/d") == "now a file");
    struct stat s = lst(tmp / "l/s");
    BOOST_TEST(S_ISDIR(s.st_mode));
    BOOST_TEST((s.st_mode & 07777) == 0710u);
    BOOST_TEST(xattr(tmp / "l/s", "trusted.overlay.opaque").value_or("") == "y");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(whiteouts)

BOOST_AUTO_TEST_CASE(whiteout_and_opaque_markers) {
    TempDir tmp("codec");
    std::string tar = TarBuilder()
                          .dir("etc")
                          .whiteout("etc/motd")
                          .file("etc/kept", "k")
                          .whiteout("etc/kept")  // same layer: stays
                          .whiteout("etc/later")
                          .file("etc/later", "back")  // replaces the whiteout
                          .whiteout("gone")
                          .dir("gone")  // replaces the whiteout: opaque
                          .dir("var")
                          .file("var/before", "1")
                          .opaque("var")  // after entries of the same dir
                          .file("var/after", "2")
                          .opaque("new/deep")  // no such directory: nothing to hide
                          .whiteout("old")
                          .whiteout("old/x")  // below a whiteout: nothing to hide
                          .finish();
    std::vector<FileRecord> recs;
    apply_tar(tar, tmp / "l", {}, &recs);
    fs::path l = tmp / "l";
    BOOST_TEST(is_whiteout_at(l / "etc/motd"));
    BOOST_TEST(content(l / "etc/kept") == "k");
    BOOST_TEST(content(l / "etc/later") == "back");
    BOOST_TEST(S_ISDIR(lst(l / "gone").st_mode));
    BOOST_TEST(xattr(l / "gone", "trusted.overlay.opaque").value_or("") == "y");
    BOOST_TEST(xattr(l / "var", "trusted.overlay.opaque").value_or("") == "y");
    BOOST_TEST(content(l / "var/before") == "1");
    BOOST_TEST(content(l / "var/after") == "2");
    BOOST_TEST(!present(l / "new"));
    BOOST_TEST(is_whiteout_at(l / "old"));
    BOOST_TEST(!xattr(l / "etc", "trusted.overlay.opaque").has_value());
    BOOST_TEST(!present(l / "etc/.wh.motd"));
    BOOST_TEST(!present(l / "var/.wh..wh..opq"));
    BOOST_TEST(record_for(recs, "etc/.wh.motd")->type == 'w');
    BOOST_TEST(record_for(recs, "var/.wh..wh..opq")->type == 'o');
}

BOOST_AUTO_TEST_CASE(opaque_root_whites_out_lower_root_entries) {
    TempDir tmp("codec");
    strata::test::TreeBuilder l0(tmp / "l0");
    l0.dir("bin").file("bin/sh", "sh").file("x", "x").file("y", "y");
    std::string tar = TarBuilder().file("y", "new y").opaque("").file("z", "z").finish();
    apply_tar(tar, tmp / "l1", {tmp / "l0"});
    BOOST_TEST(is_whiteout_at(tmp / "l1/bin"));
    BOOST_TEST(is_whiteout_at(tmp / "l1/x"));
    BOOST_TEST(content(tmp / "l1/y") == "new y");
    BOOST_TEST(content(tmp / "l1/z") == "z");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(streams_and_digests)

BOOST_AUTO_TEST_CASE(empty_input_is_an_empty_layer) {
    TempDir tmp("codec");
    for (auto c : {Compression::None, Compression::Gzip, Compression::Zstd}) {
        fs::path l = tmp / ("l" + std::to_string(static_cast<int>(c)));
        ApplyResult r = apply_tar(strata::test::compress("", c), l);
        BOOST_TEST(r.entries == 0u);
        BOOST_TEST(r.tar_bytes == 0u);
        BOOST_TEST(r.diff_digest == strata::sha256_digest(""));
        BOOST_TEST(fs::is_empty(l));
    }
}

BOOST_AUTO_TEST_CASE(gzip_zstd_and_plain_give_the_same_layer_and_digest) {
    std::string tar = TarBuilder().dir("a").file("a/b", std::string(100'000, 'z')).finish();
    for (auto c : {Compression::None, Compression::Gzip, Compression::Zstd}) {
        TempDir tmp("codec");
        std::string input = strata::test::compress(tar, c);
        if (c != Compression::None) BOOST_TEST(input.size() < tar.size() / 10);
        ApplyResult r = apply_tar(input, tmp / "l", {}, nullptr, {}, 7);  // short reads
        BOOST_TEST(r.diff_digest == strata::sha256_digest(tar));
        BOOST_TEST(r.tar_bytes == tar.size());
        BOOST_TEST(content(tmp / "l/a/b") == std::string(100'000, 'z'));
    }
}

BOOST_AUTO_TEST_CASE(trailing_padding_is_covered_by_the_digest) {
    std::string tar = TarBuilder().file("f", "data").finish();
    std::string padded = tar + std::string(50'000, '\0') + "junk after the end";
    for (auto c : {Compression::None, Compression::Gzip}) {
        TempDir tmp("codec");
        strata::test::StringByteSource src(strata::test::compress(padded, c), 1000);
        size_t total = strata::test::compress(padded, c).size();
        ApplyResult r = strata::apply_layer_tar(src, tmp.path(), {}, nullptr);
        BOOST_TEST(r.diff_digest == strata::sha256_digest(padded));
        BOOST_TEST(r.tar_bytes == padded.size());
        BOOST_TEST(src.consumed() == total);
        BOOST_TEST(content(tmp / "f") == "data");
    }
}

BOOST_AUTO_TEST_CASE(garbage_is_refused) {
    TempDir tmp("codec");
    std::string msg = error_of([&] { apply_tar(std::string(3000, 'x'), tmp / "l"); });
    BOOST_TEST(msg.find("layer tar") == 0u);
}

BOOST_AUTO_TEST_CASE(limits_are_enforced) {
    TempDir tmp("codec");
    std::string tar = TarBuilder().file("a", "1").file("b", "2").file("c", "3").finish();
    ApplyLimits few;
    few.max_entries = 2;
    BOOST_TEST(error_of([&] { apply_tar(tar, tmp / "l1", {}, nullptr, few); }) ==
               "layer tar has more than 2 entries (limit 2)");
    ApplyLimits small;
    small.max_bytes = 1024;
    std::string msg = error_of([&] {
        apply_tar(strata::test::compress(tar, Compression::Gzip), tmp / "l2", {}, nullptr, small);
    });
    BOOST_TEST(msg.find("more than 1024 uncompressed tar bytes (limit 1024)") != std::string::npos,
               msg);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(containment)

BOOST_AUTO_TEST_CASE(dotdot_is_refused) {
    TempDir tmp("codec");
    fs::create_directories(tmp / "layer/sub");
    BOOST_TEST(error_of([&] {
                   apply_tar(TarBuilder().file("../evil", "x").finish(), tmp / "layer");
               }) == "layer tar entry '../evil': path escapes the layer");
    BOOST_TEST(error_of([&] {
                   apply_tar(TarBuilder().file("sub/../../evil2", "x").finish(), tmp / "layer");
               }).find("path escapes the layer") != std::string::npos);
    BOOST_TEST(error_of([&] {
                   apply_tar(TarBuilder().file("a", "x").hardlink("b", "../a").finish(),
                             tmp / "layer");
               }) == "layer tar entry 'b': hard link target '../a' escapes the layer");
    BOOST_TEST(!present(tmp / "evil"));
    BOOST_TEST(!present(tmp / "evil2"));
}

BOOST_AUTO_TEST_CASE(symlink_parents_are_not_followed) {
    TempDir tmp("codec");
    fs::create_directories(tmp / "outside");
    std::ofstream(tmp / "outside/victim") << "precious";
    std::string out = (tmp / "outside").string();

    auto try_tar = [&](const std::string& tar) {
        return error_of([&] { apply_tar(tar, tmp / "l"); });
    };
    BOOST_TEST(try_tar(TarBuilder().symlink("evil", out).file("evil/pwned", "x").finish()) ==
               "layer tar entry 'evil/pwned': parent 'evil' is a symlink, not a directory");
    fs::remove_all(tmp / "l");
    BOOST_TEST(try_tar(TarBuilder().symlink("evil", out).whiteout("evil/victim").finish())
                   .find("layer tar entry 'evil/.wh.victim'") == 0u);
    fs::remove_all(tmp / "l");
    BOOST_TEST(try_tar(TarBuilder().symlink("evil", out).hardlink("h", "evil/victim").finish()) ==
               "layer tar entry 'h': hard link target 'evil/victim' does not exist");
    fs::remove_all(tmp / "l");
    BOOST_TEST(try_tar(TarBuilder().file("f", "x").file("f/under", "y").finish()) ==
               "layer tar entry 'f/under': parent 'f' is not a directory");
    fs::remove_all(tmp / "l");
    // A symlink named like the file it replaces is replaced, not written through.
    apply_tar(TarBuilder().symlink("victim", out + "/victim").file("victim", "mine").finish(),
              tmp / "l");
    BOOST_TEST(content(tmp / "l/victim") == "mine");

    BOOST_TEST(content(tmp / "outside/victim") == "precious");
    BOOST_TEST(!present(tmp / "outside/pwned"));
    BOOST_TEST(!fs::is_empty(tmp / "outside"));
}

BOOST_AUTO_TEST_CASE(lower_symlinks_are_not_followed_for_copy_up) {
    TempDir tmp("codec");
    fs::create_directories(tmp / "outside");
    std::ofstream(tmp / "outside/secret") << "secret";
    strata::test::TreeBuilder l0(tmp / "l0");
    l0.symlink("lib", (tmp / "outside").string());
    std::string tar = TarBuilder().hardlink("x", "lib/secret").finish();
    BOOST_TEST(error_of([&] { apply_tar(tar, tmp / "l1", {tmp / "l0"}); }) ==
               "layer tar entry 'x': hard link target 'lib/secret' does not exist");
    BOOST_TEST(!present(tmp / "l1/lib"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lower_chain)

BOOST_AUTO_TEST_CASE(hard_link_to_a_lower_file_copies_it_up) {
    TempDir tmp("codec");
    strata::test::TreeBuilder l0(tmp / "l0");
    l0.dir("bin", 0751).file("bin/tool", "tool body").owner("bin/tool", 5, 6);
    l0.chmod("bin/tool", 04750);  // after the owner, which clears setuid
    l0.xattr("bin/tool", "user.k", "v").capability("bin/tool").mtime("bin/tool", 1'400'000'000, 0);
    l0.symlink("bin/sl", "tool").owner("bin/sl", 8, 9);
    l0.owner("bin", 2, 3).mtime("bin", 1'300'000'000, 0);
    std::string tar =
        TarBuilder().hardlink("bin/tool2", "/bin/tool").hardlink("bin/sl2", "bin/sl").finish();
    ApplyResult r = apply_tar(tar, tmp / "l1", {tmp / "l0"});
    fs::path l1 = tmp / "l1";
    struct stat tool = lst(l1 / "bin/tool");
    BOOST_TEST(content(l1 / "bin/tool") == "tool body");
    BOOST_TEST((tool.st_mode & 07777) == 04750u);
    BOOST_TEST(tool.st_uid == 5u);
    BOOST_TEST(tool.st_gid == 6u);
    BOOST_TEST(tool.st_mtime == 1'400'000'000);
    BOOST_TEST(xattr(l1 / "bin/tool", "user.k").value_or("") == "v");
    BOOST_TEST(xattr(l1 / "bin/tool", "security.capability").value_or("") == capability_value());
    BOOST_TEST(lst(l1 / "bin/tool2").st_ino == tool.st_ino);
    BOOST_TEST(lst(tmp / "l0/bin/tool").st_nlink == 1u);  // the lower file is untouched
    BOOST_TEST(r.content_bytes == 9u);
    BOOST_TEST(fs::read_symlink(l1 / "bin/sl").string() == "tool");
    BOOST_TEST(lst(l1 / "bin/sl").st_uid == 8u);
    BOOST_TEST(lst(l1 / "bin/sl2").st_ino == lst(l1 / "bin/sl").st_ino);
    struct stat bin = lst(l1 / "bin");
    BOOST_TEST((bin.st_mode & 07777) == 0751u);
    BOOST_TEST(bin.st_uid == 2u);
    BOOST_TEST(bin.st_mtime == 1'300'000'000);

    BOOST_TEST(error_of([&] {
                   apply_tar(TarBuilder().hardlink("y", "nope").finish(), tmp / "l2");
               }) == "layer tar entry 'y': hard link target 'nope' does not exist");
}

BOOST_AUTO_TEST_CASE(missing_parents_take_lower_metadata) {
    TempDir tmp("codec");
    strata::test::TreeBuilder l1(tmp / "l1");
    l1.dir("etc", 0750).owner("etc", 7, 8).xattr("etc", "user.d", "dir");
    l1.dir("etc/ssh", 0700).mtime("etc/ssh", 1'100'000'500, 0).mtime("etc", 1'100'000'000, 0);
    strata::test::TreeBuilder l0(tmp / "l0");
    l0.dir("opt", 0711).owner("opt", 9, 9);
    l0.dir("srv", 0701).dir("srv/www", 0710).file("srv/www/index", "i");
    std::string tar = TarBuilder()
                          .file("etc/ssh/config", "c")
                          .file("opt/x/y", "y")
                          .whiteout("srv/www/index")
                          .opaque("srv/www")
                          .whiteout("nowhere/x")
                          .finish();
    apply_tar(tar, tmp / "l2", {tmp / "l1", tmp / "l0"});
    fs::path l2 = tmp / "l2";
    struct stat etc = lst(l2 / "etc");
    BOOST_TEST((etc.st_mode & 07777) == 0750u);
    BOOST_TEST(etc.st_uid == 7u);
    BOOST_TEST(etc.st_gid == 8u);
    BOOST_TEST(etc.st_mtime == 1'100'000'000);
    BOOST_TEST(xattr(l2 / "etc", "user.d").value_or("") == "dir");
    BOOST_TEST((lst(l2 / "etc/ssh").st_mode & 07777) == 0700u);
    BOOST_TEST(lst(l2 / "etc/ssh").st_mtime == 1'100'000'500);
    BOOST_TEST((lst(l2 / "opt").st_mode & 07777) == 0711u);  // from the farther layer
    BOOST_TEST(lst(l2 / "opt").st_uid == 9u);
    BOOST_TEST((lst(l2 / "opt/x").st_mode & 07777) == 0755u);  // nowhere below: default
    BOOST_TEST(lst(l2 / "opt/x").st_uid == 0u);
    // Markers in lower directories make them, with the lower metadata.
    BOOST_TEST((lst(l2 / "srv").st_mode & 07777) == 0701u);
    BOOST_TEST((lst(l2 / "srv/www").st_mode & 07777) == 0710u);
    BOOST_TEST(xattr(l2 / "srv/www", "trusted.overlay.opaque").value_or("") == "y");
    BOOST_TEST(is_whiteout_at(l2 / "srv/www/index"));
    BOOST_TEST(!present(l2 / "nowhere"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(export_and_changes)

std::string rich_tar() {
    return TarBuilder()
        .dir("etc", {.mode = 0755, .mtime = 1'600'000'000})
        .file("etc/passwd", "root:x:0:0\n", {.mode = 0644, .mtime = 1'600'000'001})
        .hardlink("etc/passwd-", "etc/passwd")
        .whiteout("etc/shadow")
        .dir("var", {.mode = 0700,
                     .uid = 1,
                     .gid = 2,
                     .mtime = 1'600'000'002,
                     .xattrs = {{"user.dir", "d"}}})
        .opaque("var")
        .file("var/log", "log",
              {.mode = 04711,
               .uid = 33,
               .gid = 33,
               .mtime = 1'600'000'003,
               .xattrs = {{"security.capability", capability_value()},
                          {"user.a", std::string("\0\1\2", 3)}}})
        .symlink("var/link", "/etc/passwd", {.uid = 4, .gid = 5, .mtime = 1'600'000'004})
        .dir("dev", {.mtime = 1'600'000'010})
        .device("dev/null", 'c', 1, 3, {.mode = 0666, .mtime = 1'600'000'005})
        .fifo("dev/fifo", {.mode = 0620, .mtime = 1'600'000'006})
        .sparse_file("img", 8 << 20, {{1 << 20, "data"}}, {.mtime = 1'600'000'007})
        .dir(std::string(150, 'L'), {.mtime = 1'600'000'011})
        .file(std::string(150, 'L') + "/caf\xc3\xa9 name", "u", {.mtime = 1'600'000'008})
        .finish();
}

BOOST_AUTO_TEST_CASE(round_trip_keeps_the_tree) {
    TempDir tmp("codec");
    apply_tar(rich_tar(), tmp / "a");
    strata::StringSink out;
    strata::write_layer_tar(tmp / "a", out);
    strata::StringSink again;
    strata::write_layer_tar(tmp / "a", again);
    BOOST_TEST(out.data == again.data);  // deterministic

    std::vector<FileRecord> recs;
    ApplyResult r = apply_tar(out.data, tmp / "b", {}, &recs);
    BOOST_TEST(r.diff_digest == strata::sha256_digest(out.data));
    strata::test::ManifestOptions opts;
    opts.include_root = false;
    auto diffs = strata::test::compare_manifests(strata::test::scan_tree(tmp / "a", opts),
                                                 strata::test::scan_tree(tmp / "b", opts));
    BOOST_TEST(diffs.empty(), strata::test::format_differences(diffs));

    // The overlay form came back through OCI names.
    BOOST_TEST(is_whiteout_at(tmp / "b/etc/shadow"));
    BOOST_TEST(xattr(tmp / "b/var", "trusted.overlay.opaque").value_or("") == "y");
    BOOST_TEST(lst(tmp / "b/etc/passwd-").st_ino == lst(tmp / "b/etc/passwd").st_ino);
    BOOST_TEST(lst(tmp / "b/img").st_blocks * 512 < 1 << 20);
    BOOST_TEST(record_for(recs, "etc/.wh.shadow")->type == 'w');
    BOOST_TEST(record_for(recs, "etc/.wh.shadow")->mode == 0u);
    BOOST_TEST(record_for(recs, "etc/passwd-")->type == 'h');
    BOOST_TEST(record_for(recs, "var/.wh..wh..opq")->type == 'o');
    // Entries come sorted with parents first; the marker follows its directory.
    std::vector<std::string> order;
    for (const auto& rec : recs) order.push_back(rec.path);
    std::vector<std::string> head(order.begin(), order.begin() + 4);
    BOOST_TEST(head == (std::vector<std::string>{std::string(150, 'L'),
                                                 std::string(150, 'L') + "/caf\xc3\xa9 name", "dev",
                                                 "dev/fifo"}));
    auto var = std::find(order.begin(), order.end(), "var");
    BOOST_REQUIRE(var != order.end());
    BOOST_TEST(*(var + 1) == "var/.wh..wh..opq");
    BOOST_TEST(out.data.find("trusted.overlay") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(export_refuses_partial_overlay_entries) {
    TempDir tmp("codec");
    strata::test::TreeBuilder l(tmp / "l");
    l.dir("moved").xattr("moved", "trusted.overlay.redirect", "/old");
    strata::StringSink out;
    BOOST_TEST(error_of([&] { strata::write_layer_tar(tmp / "l", out); }) ==
               "layer export: 'moved' carries trusted.overlay.redirect, which a plain layer "
               "cannot hold");
}

BOOST_AUTO_TEST_CASE(changes_against_a_lower_layer) {
    TempDir tmp("codec");
    strata::test::TreeBuilder l0(tmp / "l0");
    l0.dir("a").file("a/keep", "k").file("a/mod", "m").file("a/del", "d");
    l0.dir("b")
        .file("b/x", "x")
        .file("b/y", "old y")
        .dir("c", 0755)
        .dir("m", 0755)
        .file("m/f", "f");
    l0.file("gone", "g");
    std::string tar = TarBuilder()
                          .file("a/mod", "changed")
                          .whiteout("a/del")
                          .file("a/new", "n")
                          .opaque("b")
                          .file("b/y", "new y")
                          .dir("c", {.mode = 0755})  // same metadata: not reported
                          .dir("m", {.mode = 0700})  // mode changed
                          .whiteout("gone")
                          .dir("d")
                          .file("d/e", "e")
                          .finish();
    apply_tar(tar, tmp / "l1", {tmp / "l0"});
    std::vector<std::string> got;
    for (const Change& c : strata::layer_changes(tmp / "l1", {tmp / "l0"})) {
        got.push_back(c.path + " " + strata::change_kind_name(c.kind));
    }
    std::vector<std::string> want = {"/a/del delete", "/a/mod modify", "/a/new add", "/b modify",
                                     "/b/x delete",   "/b/y modify",   "/d add",     "/d/e add",
                                     "/gone delete",  "/m modify"};
    BOOST_TEST(got == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(content_size_counts_hard_links_once) {
    TempDir tmp("codec");
    std::string tar = TarBuilder()
                          .file("a", std::string(10, 'a'))
                          .file("b", std::string(20, 'b'))
                          .hardlink("c", "b")
                          .symlink("d", "a")
                          .whiteout("e")
                          .finish();
    apply_tar(tar, tmp / "l");
    BOOST_TEST(strata::layer_content_size(tmp / "l") == 30u);
}

BOOST_AUTO_TEST_SUITE_END()
