// The catalog: every piece of layer metadata, in one SQLite file.
//
// Invariants the catalog keeps (checked by fsck):
//   - a layer row moves creating -> ready, applying -> ready, ready ->
//     removing, and is deleted from removing (or from creating/applying when
//     the operation fails or recovery undoes it). Rows in creating, applying
//     or removing are intents that recovery resolves at the next open.
//   - chain(L) = [parent(L)] + chain(parent(L)), stored nearest parent first
//     (depth 0 = parent).
//   - a mount row's refcount is >= 0; a layer with refcount > 0 is mounted.
//   - files, chains, mounts and backups rows die with their layer (ON DELETE
//     CASCADE); a layer that is some row's parent or ancestor cannot be
//     deleted (foreign keys).
//
// The connection runs in WAL mode with synchronous=FULL and foreign keys on,
// so a committed transaction survives a power cut and readers never wait for
// a writer. A Catalog is used by one thread at a time; several processes may
// open the same file (the busy timeout serialises writers).
#pragma once

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/file_record.h"

namespace strata {

enum class LayerKind { Layer, Sandbox };
enum class LayerState { Creating, Applying, Ready, Removing };

const char* kind_name(LayerKind kind);    // "layer" | "sandbox"
const char* state_name(LayerState state);  // "creating" | ...
LayerKind parse_kind(const std::string& s);
LayerState parse_state(const std::string& s);

struct LayerRow {
    std::string id;
    std::string native_id;
    std::optional<std::string> parent;
    LayerKind kind = LayerKind::Layer;
    LayerState state = LayerState::Creating;
    uint64_t size = 0;
    std::string diff_digest;   // "" until known
    std::string created;       // RFC 3339, UTC
    std::string mount_label;
    std::string storage_opts;  // JSON object
};

struct MountRow {
    std::string layer;
    int64_t refcount = 0;
    std::string path;
    std::string mode;  // "overlay" | "copy"
    std::string boot_id;
    std::string updated;
};

struct ImageRow {
    std::string name;
    std::string top_layer;
    std::string config;
    std::string config_digest;
    std::string format;
    std::string created;
};

struct OplogRow {
    int64_t seq = 0;
    std::string at, op, layer, result, detail;
};

// The schema version this build writes.
int catalog_schema_version();

// Current time as RFC 3339 UTC with seconds ("2026-12-04T14:30:00Z").
std::string now_rfc3339();

class Catalog {
public:
    enum class Mode {
        ReadWrite,  // create if missing, upgrade an older schema
        ReadOnly,   // an existing catalog, never written (offline inspection)
    };

    // Opens (and in ReadWrite mode creates or upgrades) the catalog at
    // `file`. Throws Error when the file is not a SQLite database, is not a
    // strata catalog, is corrupt, or was written by a newer schema; the file
    // is left untouched in each of those cases.
    Catalog(const std::filesystem::path& file, Mode mode);
    ~Catalog();
    Catalog(const Catalog&) = delete;
    Catalog& operator=(const Catalog&) = delete;

    // RAII write transaction (BEGIN IMMEDIATE); rolls back in the destructor
    // unless commit() was called.
    class Txn {
    public:
        explicit Txn(Catalog& catalog);
        ~Txn();
        Txn(const Txn&) = delete;
        Txn& operator=(const Txn&) = delete;
        void commit();

    private:
        Catalog& catalog_;
        bool done_ = false;
    };

    SQLite::Database& db() { return *db_; }
    const std::filesystem::path& file() const { return file_; }
    int schema_version();

    // Layers and chains.
    std::optional<LayerRow> layer(const std::string& id);
    std::optional<LayerRow> layer_by_native(const std::string& native_id);
    std::vector<LayerRow> layers();  // ordered by creation, then id
    void insert_layer(const LayerRow& row);  // also writes the chain from the parent's
    void set_state(const std::string& id, LayerState state);
    void set_ready(const std::string& id, uint64_t size, const std::string& diff_digest);
    void delete_layer(const std::string& id);  // with its files, chain, mount, backups
    std::vector<std::string> chain(const std::string& id);  // nearest parent first
    std::vector<std::string> children(const std::string& id);
    std::vector<std::string> images_using(const std::string& layer_id);

    // Mounts.
    std::optional<MountRow> mount(const std::string& layer);
    std::vector<MountRow> mounts();
    void upsert_mount(const MountRow& row);
    void delete_mount(const std::string& layer);

    // The file index.
    void insert_files(const std::string& layer, int64_t first_seq,
                      const std::vector<FileRecord>& records);
    void for_each_file(const std::string& layer, const std::function<void(const FileRecord&)>& f);
    // Layers whose index has `path`, with the record, in no particular order.
    std::vector<std::pair<std::string, FileRecord>> find_file(const std::string& path);
    int64_t file_count(const std::string& layer);

    // Backups.
    void put_backup(const std::string& layer, const std::string& name, const std::string& digest,
                    const std::string& data);
    std::optional<std::string> backup(const std::string& layer, const std::string& name);

    // Images.
    void upsert_image(const ImageRow& row);
    std::optional<ImageRow> image(const std::string& name);
    std::vector<ImageRow> images();

    // The operation log.
    void log(const std::string& op, const std::string& layer, const std::string& result,
             const std::string& detail = "");
    std::vector<OplogRow> oplog(int64_t limit);

private:
    void configure(Mode mode);
    void check_identity(Mode mode);
    void migrate();

    std::filesystem::path file_;
    std::unique_ptr<SQLite::Database> db_;
};

}  // namespace strata
