// get/put with catalog refcounts, and the read-only driver verbs.
#include <spdlog/spdlog.h>

#include "engine/driver.h"
#include "engine/error.h"
#include "engine/fault.h"
#include "engine/recovery.h"

namespace strata {

std::string Driver::get(const std::string& id, const std::string& mount_label) {
    validate_layer_id(id);
    StoreLock lock(root_);
    ensure_recovered();
    LayerRow row = ready_layer(id);
    auto mount = catalog_->mount(id);
    int64_t refcount = mount ? mount->refcount : 0;

    // Prepare first, then count: a crash in between leaves a mount with
    // refcount 0, which recovery takes down.
    std::string path;
    if (refcount == 0 || !backend_->is_prepared(row.native_id)) {
        PrepareOptions opts;
        opts.writable = row.kind == LayerKind::Sandbox;
        opts.mount_label = mount_label;
        try {
            path = backend_->prepare(row.native_id, native_chain(id), opts);
        } catch (const std::exception& e) {
            throw Error("get layer " + id + ": " + e.what());
        }
    } else {
        path = backend_->mount_path(row.native_id);
    }
    crash_point("get.after_prepare");

    MountRow m;
    m.layer = id;
    m.refcount = refcount + 1;
    m.path = path;
    m.mode = mount_mode_name(posix_->effective_mode());
    m.boot_id = boot_id_;
    Catalog::Txn txn(*catalog_);
    catalog_->upsert_mount(m);
    if (!mount_label.empty()) {
        SQLite::Statement q(catalog_->db(), "UPDATE layers SET mount_label = ? WHERE id = ?");
        q.bind(1, mount_label);
        q.bind(2, id);
        q.exec();
    }
    catalog_->log("get", id, "ok", "refcount " + std::to_string(m.refcount));
    txn.commit();
    crash_point("get.after_commit");
    spdlog::info("get: layer {} mounted at {} (refcount {})", id, path, m.refcount);
    return path;
}

void Driver::put(const std::string& id) {
    validate_layer_id(id);
    StoreLock lock(root_);
    ensure_recovered();
    LayerRow row = ready_layer(id);
    auto mount = catalog_->mount(id);
    if (!mount || mount->refcount == 0) throw Error("put layer " + id + ": it is not mounted");

    // Count first, then unprepare: a crash in between leaves refcount 0 on
    // a mount, which recovery takes down (capturing a copied sandbox).
    MountRow m = *mount;
    m.refcount -= 1;
    m.updated.clear();
    {
        Catalog::Txn txn(*catalog_);
        if (m.refcount == 0) {
            catalog_->delete_mount(id);
        } else {
            catalog_->upsert_mount(m);
        }
        catalog_->log("put", id, "ok", "refcount " + std::to_string(m.refcount));
        txn.commit();
    }
    crash_point("put.after_commit");
    if (m.refcount == 0) {
        try {
            backend_->unprepare(row.native_id, native_chain(id), row.kind == LayerKind::Sandbox);
        } catch (const std::exception& e) {
            throw Error("put layer " + id + ": " + e.what());
        }
        crash_point("put.after_unprepare");
        spdlog::info("put: layer {} unmounted", id);
    } else {
        spdlog::info("put: layer {} still mounted (refcount {})", id, m.refcount);
    }
}

void Driver::diff(const std::string& id, const std::optional<std::string>& parent,
                  ByteSink& out) {
    LayerRow row = ready_layer(id);
    check_parent_arg(row, parent);
    backend_->read_layer(row.native_id, out);
}

std::vector<Change> Driver::changes(const std::string& id,
                                    const std::optional<std::string>& parent) {
    LayerRow row = ready_layer(id);
    check_parent_arg(row, parent);
    return backend_->changes(row.native_id, native_chain(id));
}

uint64_t Driver::diff_size(const std::string& id, const std::optional<std::string>& parent) {
    LayerRow row = ready_layer(id);
    check_parent_arg(row, parent);
    return backend_->size(row.native_id);
}

std::vector<std::pair<std::string, std::string>> Driver::metadata(const std::string& id) {
    LayerRow row = ready_layer(id);
    std::vector<std::pair<std::string, std::string>> out = {
        {"id", row.id},
        {"native_id", row.native_id},
        {"parent", row.parent.value_or("")},
        {"kind", kind_name(row.kind)},
        {"state", state_name(row.state)},
        {"size", std::to_string(row.size)},
        {"diff_digest", row.diff_digest},
        {"created", row.created},
        {"dir", posix_->layer_dir(row.native_id).string()},
    };
    auto mount = catalog_->mount(id);
    out.emplace_back("refcount", std::to_string(mount ? mount->refcount : 0));
    if (mount && mount->refcount > 0) out.emplace_back("mount_path", mount->path);
    if (!row.mount_label.empty()) out.emplace_back("mount_label", row.mount_label);
    return out;
}

std::vector<std::pair<std::string, std::string>> Driver::status() {
    auto out = backend_->status();
    auto layers = catalog_->layers();
    size_t mounted = 0;
    for (const auto& m : catalog_->mounts()) mounted += m.refcount > 0;
    out.emplace_back("Catalog", catalog_->file().string());
    out.emplace_back("Schema Version", std::to_string(catalog_->schema_version()));
    out.emplace_back("Layers", std::to_string(layers.size()));
    out.emplace_back("Mounted", std::to_string(mounted));
    out.emplace_back("Images", std::to_string(catalog_->images().size()));
    return out;
}

std::vector<std::string> Driver::cleanup() {
    StoreLock lock(root_);
    ensure_recovered();
    std::vector<std::string> done;
    for (const auto& m : catalog_->mounts()) {
        auto row = catalog_->layer(m.layer);
        try {
            if (row) {
                backend_->unprepare(row->native_id, native_chain(m.layer),
                                    row->kind == LayerKind::Sandbox);
            }
        } catch (const std::exception& e) {
            throw Error("cleanup: layer " + m.layer + ": " + e.what());
        }
        Catalog::Txn txn(*catalog_);
        catalog_->delete_mount(m.layer);
        catalog_->log("cleanup", m.layer, "ok", "released refcount " + std::to_string(m.refcount));
        txn.commit();
        crash_point("cleanup.after_release");
        done.push_back("released mount of layer " + m.layer + " (refcount " +
                       std::to_string(m.refcount) + ")");
        spdlog::info("cleanup: released mount of layer {} (refcount {})", m.layer, m.refcount);
    }
    auto repaired = run_recovery(*catalog_, *backend_, boot_id_);
    done.insert(done.end(), repaired.begin(), repaired.end());
    return done;
}

std::vector<std::string> Driver::recover() {
    StoreLock lock(root_);
    ensure_recovered();
    std::vector<std::string> done = std::move(repaired_at_open_);
    repaired_at_open_.clear();
    auto more = run_recovery(*catalog_, *backend_, boot_id_);
    done.insert(done.end(), more.begin(), more.end());
    return done;
}

}  // namespace strata
