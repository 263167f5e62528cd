// Typed access to the file index, backups, images and the operation log.
#include <SQLiteCpp/Statement.h>

#include "engine/error.h"
#include "storage/catalog.h"

namespace strata {

namespace {

constexpr const char kFileColumns[] =
    "path, type, mode, uid, gid, size, mtime, link_target, dev_major, dev_minor, xattrs";

std::string blob_string(const SQLite::Column& c) {
    if (c.isNull()) return {};
    return std::string(static_cast<const char*>(c.getBlob()), static_cast<size_t>(c.getBytes()));
}

// Reads kFileColumns starting at column `at`.
FileRecord read_file(SQLite::Statement& q, int at) {
    FileRecord r;
    r.path = blob_string(q.getColumn(at));
    r.type = q.getColumn(at + 1).getString().at(0);
    r.mode = static_cast<uint32_t>(q.getColumn(at + 2).getInt64());
    r.uid = static_cast<uint32_t>(q.getColumn(at + 3).getInt64());
    r.gid = static_cast<uint32_t>(q.getColumn(at + 4).getInt64());
    r.size = static_cast<uint64_t>(q.getColumn(at + 5).getInt64());
    r.mtime = q.getColumn(at + 6).getInt64();
    r.link_target = blob_string(q.getColumn(at + 7));
    r.dev_major = static_cast<uint32_t>(q.getColumn(at + 8).getInt64());
    r.dev_minor = static_cast<uint32_t>(q.getColumn(at + 9).getInt64());
    r.xattrs_json = q.getColumn(at + 10).getString();
    return r;
}

}  // namespace

void Catalog::insert_files(const std::string& layer, int64_t first_seq,
                           const std::vector<FileRecord>& records) {
    SQLite::Statement q(*db_, std::string("INSERT INTO files (layer, seq, ") + kFileColumns +
                                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    int64_t seq = first_seq;
    for (const FileRecord& r : records) {
        q.bind(1, layer);
        q.bind(2, seq++);
        q.bind(3, r.path.data(), static_cast<int>(r.path.size()));
        q.bind(4, std::string(1, r.type));
        q.bind(5, static_cast<int64_t>(r.mode));
        q.bind(6, static_cast<int64_t>(r.uid));
        q.bind(7, static_cast<int64_t>(r.gid));
        q.bind(8, static_cast<int64_t>(r.size));
        q.bind(9, r.mtime);
        if (r.link_target.empty()) {
            q.bind(10);
        } else {
            q.bind(10, r.link_target.data(), static_cast<int>(r.link_target.size()));
        }
        q.bind(11, static_cast<int64_t>(r.dev_major));
        q.bind(12, static_cast<int64_t>(r.dev_minor));
        if (r.xattrs_json.empty()) {
            q.bind(13);
        } else {
            q.bind(13, r.xattrs_json);
        }
        q.exec();
        q.reset();
        q.clearBindings();
    }
}

void Catalog::for_each_file(const std::string& layer,
                            const std::function<void(const FileRecord&)>& f) {
    SQLite::Statement q(*db_, std::string("SELECT ") + kFileColumns +
                                  " FROM files WHERE layer = ? ORDER BY seq");
    q.bind(1, layer);
    while (q.executeStep()) f(read_file(q, 0));
}

std::vector<std::pair<std::string, FileRecord>> Catalog::find_file(const std::string& path) {
    SQLite::Statement q(*db_, std::string("SELECT layer, ") + kFileColumns +
                                  " FROM files WHERE path = ? ORDER BY layer, seq");
    q.bind(1, path.data(), static_cast<int>(path.size()));
    std::vector<std::pair<std::string, FileRecord>> out;
    while (q.executeStep()) out.emplace_back(q.getColumn(0).getString(), read_file(q, 1));
    return out;
}

int64_t Catalog::file_count(const std::string& layer) {
    SQLite::Statement q(*db_, "SELECT count(*) FROM files WHERE layer = ?");
    q.bind(1, layer);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

void Catalog::put_backup(const std::string& layer, const std::string& name,
                         const std::string& digest, const std::string& data) {
    SQLite::Statement q(*db_,
                        "INSERT OR REPLACE INTO backups (layer, name, digest, data) "
                        "VALUES (?, ?, ?, ?)");
    q.bind(1, layer);
    q.bind(2, name);
    q.bind(3, digest);
    q.bind(4, data.data(), static_cast<int>(data.size()));
    q.exec();
}

std::optional<std::string> Catalog::backup(const std::string& layer, const std::string& name) {
    SQLite::Statement q(*db_, "SELECT data FROM backups WHERE layer = ? AND name = ?");
    q.bind(1, layer);
    q.bind(2, name);
    if (!q.executeStep()) return std::nullopt;
    return blob_string(q.getColumn(0));
}

void Catalog::upsert_image(const ImageRow& row) {
    SQLite::Statement q(*db_,
                        "INSERT INTO images (name, top_layer, config, config_digest, format, "
                        "created) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                        "top_layer = excluded.top_layer, config = excluded.config, "
                        "config_digest = excluded.config_digest, format = excluded.format");
    q.bind(1, row.name);
    q.bind(2, row.top_layer);
    q.bind(3, row.config);
    q.bind(4, row.config_digest);
    q.bind(5, row.format);
    q.bind(6, row.created.empty() ? now_rfc3339() : row.created);
    q.exec();
}

static ImageRow read_image(SQLite::Statement& q) {
    return ImageRow{q.getColumn(0).getString(), q.getColumn(1).getString(),
                    q.getColumn(2).getString(), q.getColumn(3).getString(),
                    q.getColumn(4).getString(), q.getColumn(5).getString()};
}

std::optional<ImageRow> Catalog::image(const std::string& name) {
    SQLite::Statement q(*db_,
                        "SELECT name, top_layer, config, config_digest, format, created "
                        "FROM images WHERE name = ?");
    q.bind(1, name);
    if (!q.executeStep()) return std::nullopt;
    return read_image(q);
}

std::vector<ImageRow> Catalog::images() {
    SQLite::Statement q(*db_,
                        "SELECT name, top_layer, config, config_digest, format, created "
                        "FROM images ORDER BY name");
    std::vector<ImageRow> out;
    while (q.executeStep()) out.push_back(read_image(q));
    return out;
}

void Catalog::log(const std::string& op, const std::string& layer, const std::string& result,
                  const std::string& detail) {
    SQLite::Statement q(*db_,
                        "INSERT INTO oplog (at, op, layer, result, detail) VALUES (?, ?, ?, ?, ?)");
    q.bind(1, now_rfc3339());
    q.bind(2, op);
    q.bind(3, layer);
    q.bind(4, result);
    q.bind(5, detail);
    q.exec();
}

std::vector<OplogRow> Catalog::oplog(int64_t limit) {
    SQLite::Statement q(*db_,
                        "SELECT seq, at, op, layer, result, detail FROM oplog "
                        "ORDER BY seq DESC LIMIT ?");
    q.bind(1, limit);
    std::vector<OplogRow> out;
    while (q.executeStep()) {
        out.push_back(OplogRow{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                               q.getColumn(2).getString(), q.getColumn(3).getString(),
                               q.getColumn(4).getString(), q.getColumn(5).getString()});
    }
    return out;
}

}  // namespace strata
