#include "engine/recovery.h"

#include <spdlog/spdlog.h>

#include <set>

#include "engine/error.h"
#include "engine/fault.h"

namespace strata {

namespace {

Chain chain_of(Catalog& catalog, const std::string& id) {
    Chain out;
    for (const auto& a : catalog.chain(id)) {
        auto row = catalog.layer(a);
        if (row) out.push_back(row->native_id);
    }
    return out;
}

void note(std::vector<std::string>& done, Catalog& catalog, const std::string& layer,
          const std::string& line) {
    spdlog::warn("recover: {}", line);
    catalog.log("recover", layer, "repaired", line);
    done.push_back(line);
    crash_point("recover.after_repair");
}

void undo_intents(Catalog& catalog, Backend& backend, std::vector<std::string>& done) {
    for (const LayerRow& row : catalog.layers()) {
        if (row.state == LayerState::Ready) continue;
        // Children of an unfinished layer cannot exist (a parent must be
        // ready), but a crash in removal may leave a mount row behind.
        backend.unprepare(row.native_id, chain_of(catalog, row.id),
                          row.kind == LayerKind::Sandbox);
        backend.destroy(row.native_id);
        Catalog::Txn txn(catalog);
        catalog.delete_layer(row.id);
        const char* what = row.state == LayerState::Removing ? "finished removing"
                                                             : "destroyed half-made";
        note(done, catalog, row.id,
             std::string(what) + " layer " + row.id + " (state=" + state_name(row.state) + ")");
        txn.commit();
    }
}

void reset_mounts(Catalog& catalog, Backend& backend, const std::string& boot_id,
                  std::vector<std::string>& done) {
    for (const MountRow& m : catalog.mounts()) {
        if (m.boot_id == boot_id && m.refcount > 0) continue;
        auto row = catalog.layer(m.layer);
        if (row) {
            backend.unprepare(row->native_id, chain_of(catalog, m.layer),
                              row->kind == LayerKind::Sandbox);
        }
        Catalog::Txn txn(catalog);
        catalog.delete_mount(m.layer);
        note(done, catalog, m.layer,
             "reset mount of layer " + m.layer + " (refcount " + std::to_string(m.refcount) +
                 (m.boot_id == boot_id ? ")" : ", made under an earlier boot)"));
        txn.commit();
    }

    // Prepared trees nobody counts: a crash between prepare and its commit,
    // or between the last put's commit and the unprepare.
    for (const LayerRow& row : catalog.layers()) {
        if (!backend.is_prepared(row.native_id)) continue;
        auto m = catalog.mount(row.id);
        if (m && m->refcount > 0) continue;
        backend.unprepare(row.native_id, chain_of(catalog, row.id),
                          row.kind == LayerKind::Sandbox);
        Catalog::Txn txn(catalog);
        note(done, catalog, row.id, "took down uncounted mount of layer " + row.id);
        txn.commit();
    }
}

void collect_unknown(Catalog& catalog, Backend& backend, std::vector<std::string>& done) {
    std::set<std::string> known;
    for (const LayerRow& row : catalog.layers()) known.insert(row.native_id);
    for (const std::string& name : backend.list()) {
        std::string base = is_removal_name(name) ? name.substr(0, name.size() - 9) : name;
        if (known.count(base) && !is_removal_name(name)) continue;
        if (known.count(base)) {
            // A ready layer never has a removal copy; a stale one is garbage.
            continue;
        }
        backend.destroy(base);
        Catalog::Txn txn(catalog);
        note(done, catalog, "", "collected unknown native layer " + name);
        txn.commit();
    }
}

}  // namespace

std::vector<std::string> run_recovery(Catalog& catalog, Backend& backend,
                                      const std::string& boot_id) {
    std::vector<std::string> done;
    undo_intents(catalog, backend, done);
    reset_mounts(catalog, backend, boot_id, done);
    collect_unknown(catalog, backend, done);
    for (const std::string& line : backend.collect_leftovers()) {
        Catalog::Txn txn(catalog);
        note(done, catalog, "", line);
        txn.commit();
    }
    if (!done.empty()) spdlog::info("recover: {} repairs", done.size());
    return done;
}

}  // namespace strata
