#define BOOST_TEST_MODULE hostile_store
// Hostile layer ids, catalog files and store directories, through the
// strata binary under RLIMIT_AS (tests/support/hostile.h): every one is
// refused with its exact message, and the store (every path below it, the
// catalog's bytes) and the catalog file given with --catalog are left
// exactly as they were.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "storage/catalog.h"
#include "tests/support/hostile.h"

namespace fs = std::filesystem;
using namespace strata::test;

namespace {

// Every path below `root` with its type and mode, and the catalog's digest:
// what no refused command may change.
std::vector<std::string> store_listing(const fs::path& root) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); ++it) {
        struct stat st;
        if (::lstat(it->path().c_str(), &st) != 0) continue;
        char mode[16];
        std::snprintf(mode, sizeof mode, " %06o", static_cast<unsigned>(st.st_mode));
        out.push_back(fs::relative(it->path(), root).string() + mode);
    }
    std::sort(out.begin(), out.end());
    out.push_back("catalog " + sha256_hex(read_bytes(root / "catalog.db")));
    return out;
}

// The shown form of an id in messages: control bytes as \xNN.
std::string shown(const std::string& id) {
    std::string out;
    for (unsigned char c : id) {
        if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

struct BadId {
    std::string id;
    std::string why;
};

const std::vector<BadId>& bad_ids() {
    static const std::string only = "only letters, digits, '.', '_' and '-' are allowed";
    static const std::vector<BadId> ids = {
        {"", "empty"},
        {"a/b", only},
        {"../x", only},
        {"..", "must not start with '.' or '-'"},
        {".", "must not start with '.' or '-'"},
        {".hidden", "must not start with '.' or '-'"},
        {"a\\b", only},
        {"a b", only},
        {"tab\there", only},
        {"line\nbreak", only},
        {std::string("nul\x01", 4), only},
        {"\xc3\xa9t\xc3\xa9", only},
        {std::string(129, 'x'), "longer than 128 bytes"},
        {"base-removing", "must not end in '-removing'"},
    };
    return ids;
}

// Runs SQL on a catalog copy with the SQLite C API.
void sql(const fs::path& file, const std::string& statement) {
    sqlite3* db = nullptr;
    BOOST_REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &err);
    std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    BOOST_REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

void write_file(const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

struct BadCatalog {
    std::string name;
    std::string bytes;
    std::string message;  // after "catalog <file>: "
};

// Hostile catalog files made from a real one.
std::vector<BadCatalog> bad_catalogs(const fs::path& good, const fs::path& scratch) {
    std::string bytes = read_bytes(good);
    BOOST_REQUIRE(bytes.size() > 16384);
    std::vector<BadCatalog> out;
    out.push_back(
        {"truncated", bytes.substr(0, bytes.size() / 2), "database disk image is malformed"});
    out.push_back({"header-only", bytes.substr(0, 100), "database disk image is malformed"});
    out.push_back(
        {"not-sqlite", "hello, this is not a database\n", "not a SQLite database (bad header)"});

    fs::path newer = scratch / "newer.db";
    write_file(newer, bytes);
    sql(newer, "PRAGMA user_version = 999");
    out.push_back({"newer", read_bytes(newer),
                   "written by a newer strata (schema version 999; this strata knows up to " +
                       std::to_string(strata::catalog_schema_version()) + ")"});

    fs::path foreign = scratch / "foreign.db";
    sql(foreign, "CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT)");
    out.push_back({"foreign", read_bytes(foreign), "not a strata catalog (application_id 0)"});
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_ids)

BOOST_AUTO_TEST_CASE(bad_ids_are_refused_by_every_verb_before_the_file_system) {
    HostileStore s;
    const std::vector<std::vector<std::string>> verbs = {
        {"create"},
        {"create", "--rw"},
        {"remove"},
        {"exists"},
        {"get"},
        {"put"},
        {"diff"},
        {"changes", "--json"},
        {"apply-diff"},
        {"diff-size"},
        {"metadata", "--json"},
    };
    std::vector<std::string> before = store_listing(s.root());
    for (const BadId& bad : bad_ids()) {
        std::string want = "strata: error: invalid layer id '" + shown(bad.id) + "': " + bad.why;
        for (const auto& verb : verbs) {
            std::vector<std::string> args = verb;
            args.insert(args.begin() + 1, bad.id);
            Outcome o = s.run(args, "not a tar");
            BOOST_TEST(o.exit_code == 1, verb[0] << " " << shown(bad.id));
            BOOST_TEST(o.err == want + "\n", verb[0] << ": " << o.err);
        }
        // As a parent of a new layer ("--parent ''" means no parent).
        if (bad.id.empty()) continue;
        for (const std::vector<std::string>& args :
             {std::vector<std::string>{"create", "--parent", bad.id, "child"},
              std::vector<std::string>{"apply-diff", "child", "--parent", bad.id}}) {
            Outcome o = s.run(args, "not a tar");
            BOOST_TEST(o.exit_code == 1);
            BOOST_TEST(o.err == want + "\n", args[0] << " --parent: " << o.err);
        }
    }
    BOOST_TEST(store_listing(s.root()) == before, "the store changed");
}

BOOST_AUTO_TEST_CASE(inspection_verbs_only_look_ids_up) {
    // show and files read the catalog alone: any id they do not find is
    // "does not exist", and nothing outside the catalog is consulted.
    HostileStore s;
    std::vector<std::string> before = store_listing(s.root());
    for (const BadId& bad : bad_ids()) {
        if (bad.id.find_first_of("\n\t\x01") != std::string::npos) {
            // LIMITATION: the inspection verbs print an unknown id as given,
            // so control bytes reach the error line unescaped (escaping it
            // as validate_layer_id does would lift it).
            continue;
        }
        for (const char* verb : {"show", "files"}) {
            Outcome o = s.run({verb, bad.id});
            BOOST_TEST(o.exit_code == 1);
            BOOST_TEST(o.err == "strata: error: layer " + bad.id + " does not exist\n", o.err);
        }
    }
    BOOST_TEST(store_listing(s.root()) == before, "the store changed");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(catalogs)

BOOST_AUTO_TEST_CASE(hostile_catalog_files_are_refused_and_left_alone) {
    HostileStore s;
    Outcome ok = s.run({"create", "second"});
    BOOST_REQUIRE(ok.exit_code == 0);
    TempDir scratch("strata-hostile-catalogs");
    fs::path good = scratch / "good.db";
    fs::copy_file(s.root() / "catalog.db", good);

    for (const BadCatalog& bad : bad_catalogs(good, scratch.path())) {
        // Read alone with --catalog.
        fs::path file = scratch / (bad.name + ".db");
        write_file(file, bad.bytes);
        for (const char* verb : {"ls", "show", "files"}) {
            std::vector<std::string> args = {verb};
            if (std::string(verb) != "ls") args.push_back("base");
            args.insert(args.end(), {"--catalog", file.string()});
            Outcome o = run_limited(args, {});
            BOOST_TEST(o.exit_code == 1, bad.name << " " << verb);
            BOOST_TEST(
                o.err == "strata: error: catalog " + file.string() + ": " + bad.message + "\n",
                bad.name << " " << verb << ": " << o.err);
        }
        BOOST_TEST(read_bytes(file) == bad.bytes, bad.name << " was modified");

        // As the catalog of a store.
        fs::path root = scratch / ("store-" + bad.name);
        fs::create_directory(root);
        fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace);
        write_file(root / "catalog.db", bad.bytes);
        fs::permissions(root / "catalog.db", fs::perms::owner_read | fs::perms::owner_write,
                        fs::perm_options::replace);
        for (const std::vector<std::string>& verb :
             {std::vector<std::string>{"ls"}, {"create", "x"}, {"recover"}, {"fsck"}}) {
            std::vector<std::string> args = {"--root", root.string()};
            args.insert(args.end(), verb.begin(), verb.end());
            Outcome o = run_limited(args, {});
            BOOST_TEST(o.exit_code == 1, bad.name << " " << verb[0]);
            BOOST_TEST(o.err == "strata: error: catalog " + (root / "catalog.db").string() + ": " +
                                    bad.message + "\n",
                       bad.name << " " << verb[0] << ": " << o.err);
        }
        BOOST_TEST(read_bytes(root / "catalog.db") == bad.bytes, bad.name << " was modified");
        BOOST_TEST(!fs::exists(root / "layers"), bad.name << ": the store was set up");
    }
}

BOOST_AUTO_TEST_CASE(a_corrupt_page_is_found_and_left_alone) {
    HostileStore s;
    TempDir scratch("strata-hostile-catalogs");
    fs::path file = scratch / "corrupt.db";
    std::string bytes = read_bytes(s.root() / "catalog.db");
    BOOST_REQUIRE(bytes.size() > 4 * 4096);
    for (size_t i = 2 * 4096; i < 2 * 4096 + 3000; ++i) bytes[i] = 'Z';
    write_file(file, bytes);
    Outcome o = run_limited({"ls", "--catalog", file.string()}, {});
    BOOST_TEST(o.exit_code == 1);
    // LIMITATION: SQLite's integrity report is passed on as it is, over two
    // lines (storage/catalog.cpp joining its lines would lift it).
    BOOST_TEST(o.err.rfind("strata: error: catalog " + file.string() + ": corrupt (", 0) == 0u,
               o.err);
    BOOST_TEST(read_bytes(file) == bytes);
}

BOOST_AUTO_TEST_CASE(a_good_catalog_read_alone_is_not_modified) {
    HostileStore s;
    TempDir scratch("strata-hostile-catalogs");
    fs::path file = scratch / "copy.db";
    fs::copy_file(s.root() / "catalog.db", file);
    std::string bytes = read_bytes(file);
    Outcome o = run_limited({"ls", "--json", "--catalog", file.string()}, {});
    BOOST_TEST(o.exit_code == 0, o.err);
    BOOST_TEST(o.out.find("\"base\"") != std::string::npos);
    BOOST_TEST(read_bytes(file) == bytes);
    // LIMITATION: SQLite opens a WAL catalog read-only by making -shm and
    // -wal files beside it when the directory is writable; the catalog's
    // bytes stay as they were (opening with immutable=1 would lift it).
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(store_directory)

BOOST_AUTO_TEST_CASE(a_new_store_is_private) {
    TempDir tmp("strata-hostile-root");
    fs::path root = tmp / "a/b/store";
    Outcome o = run_limited({"--root", root.string(), "ls"}, {});
    BOOST_TEST_REQUIRE(o.exit_code == 0, o.err);
    struct stat st;
    BOOST_REQUIRE(::stat(root.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0700u);
    BOOST_REQUIRE(::stat((root / "catalog.db").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0600u);

    // A store opened with looser modes is tightened.
    fs::permissions(root, static_cast<fs::perms>(0755), fs::perm_options::replace);
    fs::permissions(root / "catalog.db", static_cast<fs::perms>(0644), fs::perm_options::replace);
    BOOST_TEST(run_limited({"--root", root.string(), "ls"}, {}).exit_code == 0);
    BOOST_REQUIRE(::stat(root.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0700u);
    BOOST_REQUIRE(::stat((root / "catalog.db").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0600u);
}

BOOST_AUTO_TEST_CASE(unsafe_stores_are_refused_unchanged) {
    HostileStore s;
    fs::path root = s.root();
    fs::path catalog = root / "catalog.db";
    std::string r = root.string();
    std::string c = catalog.string();
    auto refused = [&](const std::string& message) {
        std::vector<std::string> before = store_listing(root);
        for (const std::vector<std::string>& verb :
             {std::vector<std::string>{"ls"}, {"create", "x"}, {"apply-diff", "y"}}) {
            Outcome o = s.run(verb, raw::file("f", "x") + raw::end());
            BOOST_TEST(o.exit_code == 1, verb[0]);
            BOOST_TEST(o.err == "strata: error: " + message + "\n", verb[0] << ": " << o.err);
        }
        BOOST_TEST(store_listing(root) == before, "the refused store changed: " << message);
    };

    for (unsigned mode : {0777u, 0770u, 0702u, 0720u}) {
        ::chmod(root.c_str(), mode);
        char m[8];
        std::snprintf(m, sizeof m, "%04o", mode);
        refused("store " + r + ": writable by others (mode " + m + "); refusing to use it");
    }
    ::chmod(root.c_str(), 0755);  // loose but safe: accepted, tightened
    BOOST_REQUIRE(::chown(root.c_str(), 4242, 4242) == 0);
    refused("store " + r + ": owned by uid 4242, not by this user; refusing to use it");
    BOOST_REQUIRE(::chown(root.c_str(), 0, 0) == 0);

    BOOST_REQUIRE(::chown(catalog.c_str(), 4242, 0) == 0);
    refused("catalog " + c + ": owned by uid 4242, not by this user; refusing to use it");
    BOOST_REQUIRE(::chown(catalog.c_str(), 0, 0) == 0);
    ::chmod(catalog.c_str(), 0666);
    refused("catalog " + c + ": writable by others (mode 0666); refusing to use it");
    ::chmod(catalog.c_str(), 0620);
    refused("catalog " + c + ": writable by others (mode 0620); refusing to use it");
    ::chmod(catalog.c_str(), 0600);

    // A catalog that is a symlink, and a store that is one.
    fs::rename(catalog, s.dir() / "real.db");
    fs::create_symlink(s.dir() / "real.db", catalog);
    refused("catalog " + c + ": not a file");
    fs::remove(catalog);
    fs::rename(s.dir() / "real.db", catalog);

    fs::path link = s.dir() / "link";
    fs::create_directory_symlink(root, link);
    Outcome o = run_limited({"--root", link.string(), "ls"}, {});
    BOOST_TEST(o.exit_code == 1);
    BOOST_TEST(o.err == "strata: error: store " + link.string() +
                            ": is a symlink; give the directory it points to as --root\n",
               o.err);

    fs::path file = s.dir() / "plain-file";
    write_file(file, "x");
    o = run_limited({"--root", file.string(), "ls"}, {});
    BOOST_TEST(o.err == "strata: error: store " + file.string() + ": not a directory\n", o.err);

    // Back to a private store: it works again, as it was.
    BOOST_TEST(s.run({"exists", "base"}).exit_code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
