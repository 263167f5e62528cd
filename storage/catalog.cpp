// Opening a catalog: identity checks, connection settings, migrations.
#include "storage/catalog.h"

#include <SQLiteCpp/Statement.h>
#include <spdlog/spdlog.h>

#include <sqlite3.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "engine/error.h"
#include "storage/migrations.h"

namespace strata {

namespace {

// "STRA" in ASCII: PRAGMA application_id of every strata catalog.
constexpr int kApplicationId = 0x53545241;

std::string describe(const std::filesystem::path& file) { return "catalog " + file.string(); }

// Refuses, before SQLite touches it, a file that is not a SQLite database.
void check_sqlite_header(const std::filesystem::path& file) {
    if (std::filesystem::is_directory(file)) throw Error(describe(file) + ": is a directory");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(describe(file) + ": cannot be read");
    char magic[16] = {};
    in.read(magic, sizeof magic);
    if (in.gcount() == 0) return;  // an empty file: SQLite treats it as a new database
    if (in.gcount() < 16 || std::string(magic, 16) != std::string("SQLite format 3\0", 16)) {
        throw Error(describe(file) + ": not a SQLite database (bad header)");
    }
}

// A SQLite URI naming `file`, with the characters URIs reserve escaped.
std::string file_uri(const std::filesystem::path& file, const char* query) {
    std::string uri = "file:";
    for (unsigned char c : std::filesystem::absolute(file).string()) {
        if (c == '%' || c == '?' || c == '#' || c < 0x21 || c >= 0x7f) {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            uri += buf;
        } else {
            uri.push_back(static_cast<char>(c));
        }
    }
    return uri + query;
}

// Read-only access writes nothing beside the file when it can: without a
// WAL file there is nothing to replay, and SQLite may treat the file as
// immutable (no -shm, no locks), which also works on read-only media.
std::unique_ptr<SQLite::Database> open_read_only(const std::filesystem::path& file) {
    if (!std::filesystem::exists(file.string() + "-wal")) {
        return std::make_unique<SQLite::Database>(file_uri(file, "?immutable=1"),
                                                  SQLite::OPEN_READONLY | SQLite::OPEN_URI);
    }
    return std::make_unique<SQLite::Database>(file.string(), SQLite::OPEN_READONLY);
}

}  // namespace

int catalog_schema_version() { return schema_migrations().back().version; }

std::string now_rfc3339() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Catalog::Catalog(const std::filesystem::path& file, Mode mode) : file_(file) {
    bool exists = std::filesystem::exists(file);
    if (mode == Mode::ReadOnly && !exists) throw NotFound(describe(file) + ": no such file");
    if (exists) check_sqlite_header(file);
    try {
        if (mode == Mode::ReadOnly) {
            db_ = open_read_only(file);
        } else {
            db_ = std::make_unique<SQLite::Database>(
                file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        }
        db_->setBusyTimeout(30000);
        check_identity(mode);
        configure(mode);
        if (mode == Mode::ReadWrite) migrate();
    } catch (const SQLite::Exception& e) {
        throw Error(describe(file) + ": " + e.what());
    }
}

Catalog::~Catalog() = default;

int Catalog::schema_version() { return db_->execAndGet("PRAGMA user_version").getInt(); }

void Catalog::check_identity(Mode mode) {
    // A full read of the schema also catches most truncation and corruption.
    // One statement, so one snapshot: another process may be creating the
    // catalog right now, and separate reads could straddle its commit.
    SQLite::Statement q(*db_,
                        "SELECT (SELECT application_id FROM pragma_application_id), "
                        "(SELECT user_version FROM pragma_user_version), "
                        "(SELECT count(*) FROM sqlite_master)");
    q.executeStep();
    int app_id = q.getColumn(0).getInt();
    int version = q.getColumn(1).getInt();
    int tables = q.getColumn(2).getInt();
    q.reset();

    bool blank = app_id == 0 && version == 0 && tables == 0;
    if (mode == Mode::ReadOnly && blank) {
        throw Error(describe(file_) + ": not a strata catalog (an empty database)");
    }
    if (app_id != kApplicationId && !blank) {
        throw Error(describe(file_) + ": not a strata catalog (application_id " +
                    std::to_string(app_id) + ")");
    }
    if (version > catalog_schema_version()) {
        throw Error(describe(file_) + ": written by a newer strata (schema version " +
                    std::to_string(version) + "; this strata knows up to " +
                    std::to_string(catalog_schema_version()) + ")");
    }
    if (mode == Mode::ReadOnly && version < catalog_schema_version()) {
        throw Error(describe(file_) + ": schema version " + std::to_string(version) +
                    " is older than " + std::to_string(catalog_schema_version()) +
                    "; open the store once read-write to upgrade it");
    }
    std::string check = db_->execAndGet("PRAGMA quick_check(1)").getString();
    if (check != "ok") {
        for (char& c : check) c = (c == '\n' || c == '\r') ? ' ' : c;  // one line
        throw Error(describe(file_) + ": corrupt (" + check + ")");
    }
}

void Catalog::configure(Mode mode) {
    db_->exec("PRAGMA foreign_keys = ON");
    if (mode == Mode::ReadWrite) {
        // Switching to WAL needs the database to itself for a moment; another
        // process opening the same new catalog may hold it, and the busy
        // handler does not cover every lock involved, so retry briefly.
        for (int attempt = 0;; ++attempt) {
            try {
                db_->exec("PRAGMA journal_mode = WAL");
                break;
            } catch (const SQLite::Exception& e) {
                if (e.getErrorCode() != SQLITE_BUSY || attempt >= 300) throw;
                ::usleep(10000);
            }
        }
        db_->exec("PRAGMA synchronous = FULL");
    }
}

void Catalog::migrate() {
    int current = schema_version();
    if (current == catalog_schema_version()) return;

    // Every pending migration in one transaction: an old catalog is either
    // fully upgraded or left exactly as it was. The version is read again
    // under the write lock: another process may have just done the work.
    Txn txn(*this);
    current = schema_version();
    if (current == catalog_schema_version()) {
        txn.commit();
        return;
    }
    for (const Migration& m : schema_migrations()) {
        if (m.version <= current) continue;
        db_->exec(m.sql);
        db_->exec("PRAGMA user_version = " + std::to_string(m.version));
        spdlog::info("catalog: applied schema migration {} ({})", m.version, m.name);
    }
    db_->exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    txn.commit();
}

Catalog::Txn::Txn(Catalog& catalog) : catalog_(catalog) { catalog_.db_->exec("BEGIN IMMEDIATE"); }

Catalog::Txn::~Txn() {
    if (done_) return;
    try {
        catalog_.db_->exec("ROLLBACK");
    } catch (const std::exception& e) {
        spdlog::warn("catalog: rollback failed: {}", e.what());
    }
}

void Catalog::Txn::commit() {
    catalog_.db_->exec("COMMIT");
    done_ = true;
}

const char* kind_name(LayerKind kind) { return kind == LayerKind::Sandbox ? "sandbox" : "layer"; }

const char* state_name(LayerState state) {
    switch (state) {
        case LayerState::Creating: return "creating";
        case LayerState::Applying: return "applying";
        case LayerState::Ready: return "ready";
        case LayerState::Removing: return "removing";
    }
    return "?";
}

LayerKind parse_kind(const std::string& s) {
    if (s == "layer") return LayerKind::Layer;
    if (s == "sandbox") return LayerKind::Sandbox;
    throw Error("catalog: unknown layer kind '" + s + "'");
}

LayerState parse_state(const std::string& s) {
    for (LayerState st : {LayerState::Creating, LayerState::Applying, LayerState::Ready,
                          LayerState::Removing}) {
        if (s == state_name(st)) return st;
    }
    throw Error("catalog: unknown layer state '" + s + "'");
}

}  // namespace strata
