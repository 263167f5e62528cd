#define BOOST_TEST_MODULE hostile_streams
// Hostile tar headers, stream ends, bombs and compressed streams, through
// the strata binary under RLIMIT_AS (tests/support/hostile.h): each archive
// is refused with its exact message and changes nothing, or is applied as
// docs/security.md says. Large inputs are streamed through a pipe, never
// held in memory.
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/digest.h"
#include "tests/support/hostile.h"
#include "tests/support/tar_builder.h"

namespace fs = std::filesystem;
using namespace strata::test;

namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kMiB = uint64_t{1} << 20;

struct stat lst(const fs::path& p) {
    struct stat st {};
    BOOST_REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, "lstat " << p);
    return st;
}

std::string random_bytes(size_t n) {
    std::mt19937 gen(42);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(gen() & 0xff);
    return out;
}

std::string diff_digest(HostileStore& s, const std::string& id) {
    Outcome o = s.run({"show", id, "--json"});
    return nlohmann::json::parse(o.out).at("diff_digest").get<std::string>();
}

// A PAX GNU sparse (format 0.1) entry named `name`.
std::string sparse_entry(const std::string& name, uint64_t realsize, const std::string& map,
                         const std::string& data) {
    return raw::pax({{"GNU.sparse.major", "0"},
                     {"GNU.sparse.minor", "1"},
                     {"GNU.sparse.name", name},
                     {"GNU.sparse.realsize", std::to_string(realsize)},
                     {"GNU.sparse.map", map}}) +
           raw::file("GNUSparseFile/" + name, data);
}

// The peak RSS of a run may be checked only without sanitizers.
void expect_small(const Outcome& o, long limit_kb = 64 * 1024) {
    if (kSanitized) return;  // ASan's shadow memory is counted in the RSS
    BOOST_TEST(o.max_rss_kb < limit_kb, "peak RSS " << o.max_rss_kb << " KiB");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(headers)

BOOST_AUTO_TEST_CASE(pax_size_wins_over_the_ustar_size) {
    HostileStore s;
    std::string tar = raw::pax({{"size", "5"}}) + raw::header({.name = "p", .size = 10}) +
                      raw::body("0123456789") + raw::pax({{"size", "10"}}) +
                      raw::header({.name = "q", .size = 5}) + raw::body("0123456789") +
                      raw::file("next", "n") + raw::end();
    fs::path l = expect_applied(s, "pax", tar);
    BOOST_TEST(read_bytes(l / "p") == "01234");
    BOOST_TEST(read_bytes(l / "q") == "0123456789");
    BOOST_TEST(read_bytes(l / "next") == "n");
}

BOOST_AUTO_TEST_CASE(names_given_twice_are_refused) {
    HostileStore s;
    const std::string name_twice =
        "the name is given twice (PAX path and GNU long-name records); tar readers disagree on "
        "which one wins";
    expect_refused(s, "n1",
                   raw::pax({{"path", "from-pax"}}) + raw::gnu_long("from-gnu") +
                       raw::file("hdr", "z") + raw::end(),
                   "layer tar entry 'from-pax': " + name_twice);
    expect_refused(s, "n2",
                   raw::gnu_long("from-gnu") + raw::pax({{"path", "from-pax"}}) +
                       raw::file("hdr", "z") + raw::end(),
                   "layer tar entry 'from-gnu': " + name_twice);
    expect_refused(s, "n3",
                   raw::gnu_long("one") + raw::gnu_long("two") + raw::file("hdr", "z") + raw::end(),
                   "layer tar entry 'two': " + name_twice);
    expect_refused(s, "n4",
                   raw::pax({{"path", "a"}, {"path", "b"}}) + raw::file("hdr", "z") + raw::end(),
                   "layer tar entry 'b': " + name_twice);
    expect_refused(s, "n5",
                   raw::pax({{"linkpath", "t1"}}) + raw::gnu_long("t2", 'K') +
                       raw::header({.name = "s", .type = '2', .link = "short"}) + raw::end(),
                   "layer tar entry 's': the link target is given twice (PAX linkpath and GNU "
                   "long-link records); tar readers disagree on which one wins");

    // One long name, either way, is fine.
    std::string long_name = std::string(150, 'g') + "/" + std::string(150, 'p');
    fs::path l = expect_applied(s, "one",
                                raw::gnu_long(long_name) + raw::file("hdr", "gnu") +
                                    raw::pax({{"path", long_name + "2"}}) +
                                    raw::file("hdr2", "pax") + raw::end());
    BOOST_TEST(read_bytes(l / long_name) == "gnu");
    BOOST_TEST(read_bytes(l / (long_name + "2")) == "pax");
}

BOOST_AUTO_TEST_CASE(names_given_twice_are_found_anywhere_in_the_stream) {
    // The header blocks straddle the reader's 64 KiB chunks at every offset
    // tried, compressed or not.
    HostileStore s;
    std::string bad = raw::pax({{"path", "from-pax"}}) + raw::gnu_long("from-gnu") +
                      raw::file("hdr", "z") + raw::end();
    for (size_t pad : {65536 - 1024, 65536 - 512 - 512, 65536 - 512 * 3, 2 * 65536 - 1536}) {
        std::string tar = raw::file("pad", std::string(pad - 512, 'p')) + bad;
        for (Compression c : {Compression::None, Compression::Gzip}) {
            Outcome o = s.apply("n" + std::to_string(pad), compress(tar, c));
            BOOST_TEST(o.exit_code == 1);
            BOOST_TEST(last_line(o.err).find("layer tar entry 'from-pax': the name is given "
                                             "twice") != std::string::npos,
                       "pad " << pad << ": " << o.err);
        }
    }
}

BOOST_AUTO_TEST_CASE(oversized_headers_are_refused) {
    HostileStore s;
    // One record over libarchive's 1 MiB, and 20 records of 1 MB for one
    // entry, more than the 16 MiB of headers strata keeps for its checks.
    std::string value(1'100'000, 'v');
    expect_refused(s, "one",
                   raw::pax({{"SCHILY.xattr.user.k", value}}) + raw::file("x", "1") + raw::end(),
                   "layer tar: first entry: Special header too large");
    value.resize(1'000'000);
    std::string many;
    for (int i = 0; i < 20; ++i)
        many += raw::pax({{"SCHILY.xattr.user.k" + std::to_string(i), value}});
    many += raw::file("x", "1") + raw::end();
    StoreState before = s.state();
    Outcome o = s.apply("many", many);
    BOOST_TEST(o.exit_code == 1);
    BOOST_TEST(last_line(o.err) ==
               "strata: error: apply-diff layer many: layer tar: first entry: "
               "the headers of one entry are longer than 16777216 bytes");
    expect_same(before, s.state());
}

BOOST_AUTO_TEST_CASE(a_size_over_8_gib_with_a_short_body) {
    HostileStore s;
    const std::string msg =
        "layer tar entry 'big': 512 of 9663676416 content bytes read: cannot read the content: "
        "Truncated tar archive";
    expect_refused(s, "pax",
                   raw::pax({{"size", std::to_string(9 * kGiB)}}) + raw::file("big", "short body"),
                   msg);
    // Base-256: a marker byte, then 9 GiB (0x2_4000_0000) big-endian.
    std::string b256 =
        std::string("\x80", 1) + std::string(6, '\0') + "\x02\x40" + std::string(3, '\0');
    expect_refused(s, "b256", raw::header({.name = "big", .size_field = b256}) + raw::body("x"),
                   msg);

    Outcome o = s.apply("b256", raw::header({.name = "big", .size_field = b256}) + raw::body("x"));
    BOOST_TEST(o.exit_code == 1);
    expect_small(o);
}

BOOST_AUTO_TEST_CASE(sparse_maps_that_disagree_with_the_entry) {
    HostileStore s;
    expect_refused(s, "beyond", sparse_entry("sp", 50, "0,5,100,5", "aaaaabbbbb") + raw::end(),
                   "layer tar entry 'sp': content runs past the entry size");
    expect_refused(s, "short", sparse_entry("sp", 5000, "0,4000", "xxxxxxxxxx") + raw::end(),
                   "layer tar entry 'sp': the sparse map names 4000 bytes of data but the entry "
                   "holds 10");
    expect_refused(s, "backwards", sparse_entry("sp", 20, "10,5,0,5", "aaaaabbbbb") + raw::end(),
                   "layer tar entry 'sp': the sparse map names 5 bytes of data but the entry "
                   "holds 10");
    expect_refused(s, "huge", sparse_entry("sp", uint64_t{2} << 40, "0,5", "hello") + raw::end(),
                   "layer tar entry 'sp': size 2199023255552 is more than 1099511627776 "
                   "uncompressed tar bytes (limit 1099511627776)");

    // Within the limit a sparse size is applied as holes: no disk is used.
    uint64_t size = 100 * kGiB;
    std::string map = "0,5," + std::to_string(size - 5) + ",5";
    fs::path l =
        expect_applied(s, "holes", sparse_entry("sp", size, map, "helloworld") + raw::end());
    struct stat st = lst(l / "sp");
    BOOST_TEST(static_cast<uint64_t>(st.st_size) == size);
    BOOST_TEST(st.st_blocks < 64);
}

BOOST_AUTO_TEST_CASE(truncated_archives) {
    HostileStore s;
    std::string a = raw::file("a", std::string(1000, 'A'));
    expect_refused(s, "t1", raw::file("ok", "o") + a.substr(0, 800),
                   "layer tar entry 'a': 288 of 1000 content bytes read: cannot read the "
                   "content: Truncated tar archive");
    expect_refused(s, "t2", raw::file("ok", "o") + a.substr(0, 300),
                   "layer tar entry after 'ok': Truncated tar archive");

    // Ending at an entry boundary without the end marker is accepted, as
    // GNU tar and Go's archive/tar accept it.
    fs::path l = expect_applied(s, "t3", raw::file("ok", "o"));
    BOOST_TEST(read_bytes(l / "ok") == "o");
}

BOOST_AUTO_TEST_CASE(data_after_the_end_marker) {
    HostileStore s;
    // After a complete marker: padding, applied and covered by the digest.
    std::string garbage = raw::file("ok", "o") + raw::end() + "GARBAGE" + raw::file("late", "x");
    fs::path l = expect_applied(s, "g1", garbage);
    BOOST_TEST(!fs::exists(l / "late"));
    BOOST_TEST(diff_digest(s, "g1") == sha256_hex(garbage));

    // After a lone zero block: an entry other readers would see or refuse.
    expect_refused(
        s, "g2",
        raw::file("ok", "o") + std::string(512, '\0') + raw::file("after", "x") + raw::end(),
        "layer tar: data at byte 1536 follows a lone zero block at byte 1024 (an "
        "end-of-archive marker is two zero blocks)");
    l = expect_applied(s, "g3", raw::file("ok", "o") + std::string(612, '\0'));
    BOOST_TEST(read_bytes(l / "ok") == "o");
}

BOOST_AUTO_TEST_CASE(gigabytes_of_zero_padding_are_streamed) {
    HostileStore s;
    Stream input{.prefix = raw::file("ok", "o") + raw::end(), .zeros = 3 * kGiB};
    StoreState before = s.state();
    Outcome o = s.apply("padded", input);
    BOOST_TEST_REQUIRE(o.exit_code == 0, o.err);
    expect_same(before, s.state(), "padded");
    expect_small(o);

    strata::Sha256 h;
    h.update(input.prefix.data(), input.prefix.size());
    std::string zeros(kMiB, '\0');
    for (uint64_t i = 0; i < input.zeros / kMiB; ++i) h.update(zeros.data(), zeros.size());
    BOOST_TEST(diff_digest(s, "padded") == h.final_digest());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bombs)

BOOST_AUTO_TEST_CASE(entry_count_limit) {
    HostileStore s;
    TarBuilder b;
    for (int i = 0; i < 30; ++i) b.file("f" + std::to_string(i), "x");
    std::string tar = b.finish();
    expect_refused(s, "many", Stream{.prefix = tar},
                   "layer tar has more than 10 entries (limit 10)", true, Match::Exact,
                   {"--max-entries", "10"});
    Outcome o = s.apply("many", tar, true, {"--max-entries", "30"});
    BOOST_TEST(o.exit_code == 0, o.err);
}

BOOST_AUTO_TEST_CASE(uncompressed_bytes_limit) {
    HostileStore s;
    std::string tar = TarBuilder().file("big", std::string(200'000, 'b')).finish();
    expect_refused(s, "big", Stream{.prefix = tar},
                   "more than 100000 uncompressed tar bytes (limit 100000)", true, Match::Contains,
                   {"--max-bytes", "100000"});
    BOOST_TEST(s.apply("big", tar, true, {"--max-bytes", "1000000"}).exit_code == 0);

    // Padding counts too.
    expect_refused(s, "pad", Stream{.prefix = raw::file("ok", "o") + raw::end(), .zeros = 2 * kMiB},
                   "layer tar: more than 1048576 uncompressed tar bytes (limit 1048576)", true,
                   Match::Exact, {"--max-bytes", "1048576"});
}

BOOST_AUTO_TEST_CASE(expansion_ratio_limit) {
    HostileStore s;
    std::string tar = TarBuilder().file("zeros", std::string(80 * kMiB, '\0')).finish();
    std::string bomb = compress(tar, Compression::Zstd);
    std::string().swap(tar);  // the child's peak RSS starts from ours at fork
    BOOST_TEST_REQUIRE(bomb.size() < 80 * kMiB / 1000);

    StoreState before = s.state();
    Outcome o = s.apply("bomb", bomb);
    BOOST_TEST(o.exit_code == 1);
    BOOST_TEST(last_line(o.err).find("the uncompressed stream is more than 1000 times its "
                                     "compressed size") != std::string::npos,
               o.err);
    expect_same(before, s.state());
    expect_small(o);

    // Raised (or off), the same stream applies.
    BOOST_TEST(s.apply("bomb", bomb, true, {"--max-ratio", "0"}).exit_code == 0);
    BOOST_TEST(s.apply("bomb2", bomb, true, {"--max-ratio", "10000000"}).exit_code == 0);
    BOOST_TEST(fs::file_size(s.layer_dir("bomb") / "zeros") == 80 * kMiB);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(compressed)

BOOST_AUTO_TEST_CASE(truncated_streams) {
    HostileStore s;
    std::string tar = TarBuilder().file("small", "s").file("big", random_bytes(300'000)).finish();
    std::string gz = compress(tar, Compression::Gzip);
    expect_refused(s, "gz1", Stream{.prefix = gz.substr(0, gz.size() / 2)},
                   "content bytes read: cannot read the content: cannot decompress: truncated "
                   "gzip input",
                   true, Match::Contains);
    // Without its trailer: libarchive gives no reason, the stream's end does.
    expect_refused(s, "gz2", Stream{.prefix = gz.substr(0, gz.size() - 8)},
                   "cannot decompress: the compressed stream ends early", true, Match::Contains);
    std::string zst = compress(tar, Compression::Zstd);
    for (size_t keep : {zst.size() / 2, zst.size() - 8}) {
        expect_refused(s, "zst", Stream{.prefix = zst.substr(0, keep)},
                       "cannot decompress: Truncated zstd input", true, Match::Contains);
    }
    // Too short to hold a header: refused when the stream is opened.
    expect_refused(s, "gz3", gz.substr(0, 30),
                   "layer tar: cannot open the stream: truncated gzip input");
}

BOOST_AUTO_TEST_CASE(multi_member_and_multi_frame_streams_are_read_to_the_end) {
    HostileStore s;
    std::string tar = TarBuilder()
                          .file("a", random_bytes(5000))
                          .file("b", std::string(70'000, 'b'))
                          .file("c", "c")
                          .finish();
    for (Compression c : {Compression::Gzip, Compression::Zstd}) {
        std::string id = c == Compression::Gzip ? "gz" : "zst";
        // Cuts inside a header, inside content, and in the end marker.
        std::string joined = compress(tar.substr(0, 700), c) +
                             compress(tar.substr(700, 40'000), c) +
                             compress(tar.substr(40'700, tar.size() - 40'700 - 600), c) +
                             compress(tar.substr(tar.size() - 600), c);
        fs::path l = expect_applied(s, id, joined);
        BOOST_TEST(read_bytes(l / "b") == std::string(70'000, 'b'));
        BOOST_TEST(read_bytes(l / "c") == "c");
        BOOST_TEST(diff_digest(s, id) == sha256_hex(tar));
    }
}

BOOST_AUTO_TEST_CASE(wrong_magic) {
    HostileStore s;
    expect_refused(s, "gz", std::string("\x1f\x8bgarbage garbage garbage"),
                   "layer tar: not a tar archive: Unrecognized archive format");
    expect_refused(s, "bz", std::string("BZh91AY&SYgarbage garbage"),
                   "layer tar: cannot open the stream: bzip decompression failed");
    expect_refused(s, "zst", Stream{.prefix = std::string("\x28\xb5\x2f\xfdgarbage garbage")},
                   "layer tar: cannot open the stream: Zstd decompression failed", true,
                   Match::Contains);
    expect_refused(s, "rand", random_bytes(4000),
                   "layer tar: not a tar archive: Unrecognized archive format");
    expect_refused(s, "text", compress(std::string(3000, 't'), Compression::Gzip),
                   "layer tar: not a tar archive: Unrecognized archive format");
}

BOOST_AUTO_TEST_SUITE_END()
