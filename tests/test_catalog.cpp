#define BOOST_TEST_MODULE catalog
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "storage/catalog.h"
#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using namespace strata;
using strata::test::TempDir;

namespace {

LayerRow make_row(const std::string& id, std::optional<std::string> parent) {
    LayerRow r;
    r.id = id;
    r.native_id = "n-" + id;
    r.parent = std::move(parent);
    r.state = LayerState::Ready;
    r.created = now_rfc3339();
    return r;
}

std::string open_error(const fs::path& file, Catalog::Mode mode) {
    try {
        Catalog c(file, mode);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(new_catalog_has_pragmas_and_schema) {
    TempDir dir;
    fs::path file = dir / "catalog.db";
    {
        Catalog c(file, Catalog::Mode::ReadWrite);
        BOOST_TEST(c.schema_version() == catalog_schema_version());
        BOOST_TEST(c.db().execAndGet("PRAGMA journal_mode").getString() == "wal");
        BOOST_TEST(c.db().execAndGet("PRAGMA synchronous").getInt() == 2);  // FULL
        BOOST_TEST(c.db().execAndGet("PRAGMA foreign_keys").getInt() == 1);
        BOOST_TEST(c.db().execAndGet("PRAGMA application_id").getInt() == 0x53545241);
    }
    Catalog again(file, Catalog::Mode::ReadOnly);
    BOOST_TEST(again.schema_version() == catalog_schema_version());
}

BOOST_AUTO_TEST_CASE(chain_is_parent_then_parents_chain) {
    TempDir dir;
    Catalog c(dir / "catalog.db", Catalog::Mode::ReadWrite);
    c.insert_layer(make_row("a", std::nullopt));
    c.insert_layer(make_row("b", "a"));
    c.insert_layer(make_row("c", "b"));
    BOOST_TEST(c.chain("a").empty());
    BOOST_TEST((c.chain("c") == std::vector<std::string>{"b", "a"}));
    BOOST_TEST((c.children("a") == std::vector<std::string>{"b"}));
    BOOST_TEST(c.layer("c")->parent.value() == "b");
}

BOOST_AUTO_TEST_CASE(parent_cannot_be_deleted_and_rows_cascade) {
    TempDir dir;
    Catalog c(dir / "catalog.db", Catalog::Mode::ReadWrite);
    c.insert_layer(make_row("a", std::nullopt));
    c.insert_layer(make_row("b", "a"));
    FileRecord f;
    f.path = "etc/\xff\xfe-bytes";
    f.type = 'f';
    f.size = 3;
    c.insert_files("b", 0, {f});
    c.upsert_mount(MountRow{"b", 2, "/mnt/b", "overlay", "boot", ""});

    BOOST_CHECK_THROW(c.delete_layer("a"), SQLite::Exception);
    auto hits = c.find_file("etc/\xff\xfe-bytes");
    BOOST_TEST(hits.size() == 1u);
    BOOST_TEST(hits[0].first == "b");
    BOOST_TEST(hits[0].second.size == 3u);

    c.delete_layer("b");
    BOOST_TEST(c.file_count("b") == 0);
    BOOST_TEST(!c.mount("b").has_value());
    BOOST_TEST(c.chain("b").empty());
    c.delete_layer("a");
    BOOST_TEST(c.layers().empty());
}

BOOST_AUTO_TEST_CASE(negative_refcount_is_refused) {
    TempDir dir;
    Catalog c(dir / "catalog.db", Catalog::Mode::ReadWrite);
    c.insert_layer(make_row("a", std::nullopt));
    BOOST_CHECK_THROW(c.upsert_mount(MountRow{"a", -1, "/m", "overlay", "boot", ""}),
                      SQLite::Exception);
}

BOOST_AUTO_TEST_CASE(transaction_rolls_back_unless_committed) {
    TempDir dir;
    Catalog c(dir / "catalog.db", Catalog::Mode::ReadWrite);
    {
        Catalog::Txn txn(c);
        c.insert_layer(make_row("a", std::nullopt));
    }
    BOOST_TEST(!c.layer("a").has_value());
    {
        Catalog::Txn txn(c);
        c.insert_layer(make_row("a", std::nullopt));
        txn.commit();
    }
    BOOST_TEST(c.layer("a").has_value());
}

BOOST_AUTO_TEST_CASE(newer_schema_is_refused_and_file_untouched) {
    TempDir dir;
    fs::path file = dir / "catalog.db";
    { Catalog c(file, Catalog::Mode::ReadWrite); }
    {
        SQLite::Database db(file.string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA user_version = 99");
    }
    std::string before = strata::test::read_file(file);
    std::string err = open_error(file, Catalog::Mode::ReadWrite);
    BOOST_TEST(err.find("newer strata") != std::string::npos, err);
    BOOST_TEST(err.find("99") != std::string::npos, err);
    BOOST_TEST(strata::test::read_file(file) == before);
}

BOOST_AUTO_TEST_CASE(foreign_sqlite_file_is_refused_and_untouched) {
    TempDir dir;
    fs::path file = dir / "other.db";
    {
        SQLite::Database db(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec("CREATE TABLE t (x)");
    }
    std::string before = strata::test::read_file(file);
    std::string err = open_error(file, Catalog::Mode::ReadWrite);
    BOOST_TEST(err.find("not a strata catalog") != std::string::npos, err);
    BOOST_TEST(strata::test::read_file(file) == before);
    BOOST_TEST(!fs::exists(file.string() + "-wal"));
}

BOOST_AUTO_TEST_CASE(non_sqlite_and_truncated_files_are_refused) {
    TempDir dir;
    fs::path junk = dir / "junk.db";
    std::ofstream(junk) << "this is not a database at all, just some text\n";
    std::string err = open_error(junk, Catalog::Mode::ReadWrite);
    BOOST_TEST(err.find("not a SQLite database") != std::string::npos, err);

    fs::path file = dir / "catalog.db";
    {
        Catalog c(file, Catalog::Mode::ReadWrite);
        for (int i = 0; i < 200; ++i) c.insert_layer(make_row("l" + std::to_string(i), {}));
    }
    fs::path cut = dir / "cut.db";
    std::string whole = strata::test::read_file(file);
    std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() / 2);
    std::string before = strata::test::read_file(cut);
    err = open_error(cut, Catalog::Mode::ReadWrite);
    BOOST_TEST(!err.empty());
    BOOST_TEST(err.find("catalog " + cut.string()) == 0u, err);
    BOOST_TEST(strata::test::read_file(cut) == before);
}

BOOST_AUTO_TEST_CASE(read_only_open_of_missing_file_is_not_found) {
    TempDir dir;
    BOOST_CHECK_THROW(Catalog(dir / "none.db", Catalog::Mode::ReadOnly), NotFound);
    BOOST_TEST(!fs::exists(dir / "none.db"));
}
