// Typed access to layers, chains and mounts.
#include <SQLiteCpp/Statement.h>

#include "engine/error.h"
#include "storage/catalog.h"

namespace strata {

namespace {

constexpr const char kLayerColumns[] =
    "id, native_id, parent, kind, state, size, diff_digest, created, mount_label, storage_opts";

LayerRow read_layer(SQLite::Statement& q) {
    LayerRow r;
    r.id = q.getColumn(0).getString();
    r.native_id = q.getColumn(1).getString();
    if (!q.getColumn(2).isNull()) r.parent = q.getColumn(2).getString();
    r.kind = parse_kind(q.getColumn(3).getString());
    r.state = parse_state(q.getColumn(4).getString());
    r.size = static_cast<uint64_t>(q.getColumn(5).getInt64());
    r.diff_digest = q.getColumn(6).getString();
    r.created = q.getColumn(7).getString();
    r.mount_label = q.getColumn(8).getString();
    r.storage_opts = q.getColumn(9).getString();
    return r;
}

std::vector<std::string> strings(SQLite::Statement& q) {
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

MountRow read_mount(SQLite::Statement& q) {
    return MountRow{q.getColumn(0).getString(), q.getColumn(1).getInt64(),
                    q.getColumn(2).getString(), q.getColumn(3).getString(),
                    q.getColumn(4).getString(), q.getColumn(5).getString()};
}

}  // namespace

std::optional<LayerRow> Catalog::layer(const std::string& id) {
    SQLite::Statement q(*db_, std::string("SELECT ") + kLayerColumns + " FROM layers WHERE id = ?");
    q.bind(1, id);
    if (!q.executeStep()) return std::nullopt;
    return read_layer(q);
}

std::optional<LayerRow> Catalog::layer_by_native(const std::string& native_id) {
    SQLite::Statement q(*db_, std::string("SELECT ") + kLayerColumns +
                                  " FROM layers WHERE native_id = ?");
    q.bind(1, native_id);
    if (!q.executeStep()) return std::nullopt;
    return read_layer(q);
}

std::vector<LayerRow> Catalog::layers() {
    SQLite::Statement q(*db_, std::string("SELECT ") + kLayerColumns +
                                  " FROM layers ORDER BY created, rowid");
    std::vector<LayerRow> out;
    while (q.executeStep()) out.push_back(read_layer(q));
    return out;
}

void Catalog::insert_layer(const LayerRow& row) {
    SQLite::Statement q(*db_, std::string("INSERT INTO layers (") + kLayerColumns +
                                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, row.id);
    q.bind(2, row.native_id);
    if (row.parent) {
        q.bind(3, *row.parent);
    } else {
        q.bind(3);
    }
    q.bind(4, kind_name(row.kind));
    q.bind(5, state_name(row.state));
    q.bind(6, static_cast<int64_t>(row.size));
    q.bind(7, row.diff_digest);
    q.bind(8, row.created);
    q.bind(9, row.mount_label);
    q.bind(10, row.storage_opts.empty() ? std::string("{}") : row.storage_opts);
    q.exec();

    if (!row.parent) return;
    // chain(L) = [parent] + chain(parent)
    SQLite::Statement c(*db_,
                        "INSERT INTO chains (layer, depth, ancestor) "
                        "SELECT ?1, 0, ?2 UNION ALL "
                        "SELECT ?1, depth + 1, ancestor FROM chains WHERE layer = ?2");
    c.bind(1, row.id);
    c.bind(2, *row.parent);
    c.exec();
}

void Catalog::set_state(const std::string& id, LayerState state) {
    SQLite::Statement q(*db_, "UPDATE layers SET state = ? WHERE id = ?");
    q.bind(1, state_name(state));
    q.bind(2, id);
    if (q.exec() != 1) throw NotFound("catalog: no layer " + id);
}

void Catalog::set_ready(const std::string& id, uint64_t size, const std::string& diff_digest) {
    SQLite::Statement q(*db_,
                        "UPDATE layers SET state = 'ready', size = ?, diff_digest = ? "
                        "WHERE id = ?");
    q.bind(1, static_cast<int64_t>(size));
    q.bind(2, diff_digest);
    q.bind(3, id);
    if (q.exec() != 1) throw NotFound("catalog: no layer " + id);
}

void Catalog::delete_layer(const std::string& id) {
    SQLite::Statement q(*db_, "DELETE FROM layers WHERE id = ?");
    q.bind(1, id);
    q.exec();
}

std::vector<std::string> Catalog::chain(const std::string& id) {
    SQLite::Statement q(*db_, "SELECT ancestor FROM chains WHERE layer = ? ORDER BY depth");
    q.bind(1, id);
    return strings(q);
}

std::vector<std::string> Catalog::children(const std::string& id) {
    SQLite::Statement q(*db_, "SELECT id FROM layers WHERE parent = ? ORDER BY id");
    q.bind(1, id);
    return strings(q);
}

std::vector<std::string> Catalog::images_using(const std::string& layer_id) {
    SQLite::Statement q(*db_, "SELECT name FROM images WHERE top_layer = ? ORDER BY name");
    q.bind(1, layer_id);
    return strings(q);
}

std::optional<MountRow> Catalog::mount(const std::string& layer) {
    SQLite::Statement q(*db_,
                        "SELECT layer, refcount, path, mode, boot_id, updated FROM mounts "
                        "WHERE layer = ?");
    q.bind(1, layer);
    if (!q.executeStep()) return std::nullopt;
    return read_mount(q);
}

std::vector<MountRow> Catalog::mounts() {
    SQLite::Statement q(*db_,
                        "SELECT layer, refcount, path, mode, boot_id, updated FROM mounts "
                        "ORDER BY layer");
    std::vector<MountRow> out;
    while (q.executeStep()) out.push_back(read_mount(q));
    return out;
}

void Catalog::upsert_mount(const MountRow& row) {
    SQLite::Statement q(*db_,
                        "INSERT INTO mounts (layer, refcount, path, mode, boot_id, updated) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(layer) DO UPDATE SET "
                        "refcount = excluded.refcount, path = excluded.path, "
                        "mode = excluded.mode, boot_id = excluded.boot_id, "
                        "updated = excluded.updated");
    q.bind(1, row.layer);
    q.bind(2, row.refcount);
    q.bind(3, row.path);
    q.bind(4, row.mode);
    q.bind(5, row.boot_id);
    q.bind(6, row.updated.empty() ? now_rfc3339() : row.updated);
    q.exec();
}

void Catalog::delete_mount(const std::string& layer) {
    SQLite::Statement q(*db_, "DELETE FROM mounts WHERE layer = ?");
    q.bind(1, layer);
    q.exec();
}

}  // namespace strata
