#include "engine/fsck.h"

#include <SQLiteCpp/Statement.h>

#include <set>

#include "engine/error.h"
#include "engine/fsck_index.h"

namespace fs = std::filesystem;

namespace strata {

namespace {

void check_sqlite(Catalog& catalog, FsckReport& report) {
    SQLite::Statement integrity(catalog.db(), "PRAGMA integrity_check");
    while (integrity.executeStep()) {
        std::string line = integrity.getColumn(0).getString();
        if (line != "ok") report.problems.push_back({"integrity", "", line});
    }
    SQLite::Statement fk(catalog.db(), "PRAGMA foreign_key_check");
    while (fk.executeStep()) {
        report.problems.push_back({"integrity", "",
                                   "foreign key violation in table " +
                                       fk.getColumn(0).getString() + " row " +
                                       fk.getColumn(1).getString()});
    }
}

void check_index(Driver& driver, const LayerRow& row, bool full, FsckReport& report) {
    if (row.kind != LayerKind::Layer || row.state != LayerState::Ready) return;
    fs::path dir = driver.posix().layer_dir(row.native_id);
    for (const auto& p : check_file_index(driver.catalog(), row.id, dir, full)) {
        report.problems.push_back({"index", row.id, "/" + p.path + ": " + p.detail});
    }
}

void check_layers(Driver& driver, bool full, FsckReport& report) {
    Catalog& catalog = driver.catalog();
    Backend& backend = driver.backend();
    const std::vector<std::string> listed = backend.list();
    std::set<std::string> natives(listed.begin(), listed.end());
    std::set<std::string> known;
    for (const LayerRow& row : catalog.layers()) {
        ++report.layers_checked;
        known.insert(row.native_id);
        if (row.state != LayerState::Ready) {
            report.problems.push_back({"state", row.id,
                                       std::string("layer is in intent state ") +
                                           state_name(row.state)});
        }
        std::vector<std::string> expect;
        if (row.parent) {
            expect.push_back(*row.parent);
            auto up = catalog.chain(*row.parent);
            expect.insert(expect.end(), up.begin(), up.end());
        }
        if (catalog.chain(row.id) != expect) {
            report.problems.push_back({"chain", row.id, "stored chain differs from parent links"});
        }
        if (row.state == LayerState::Ready && !backend.exists(row.native_id)) {
            report.problems.push_back({"backend", row.id,
                                       "native layer " + row.native_id + " is missing"});
        }
        bool prepared = backend.is_prepared(row.native_id);
        auto m = catalog.mount(row.id);
        int64_t refs = m ? m->refcount : 0;
        if (refs > 0 && !prepared) {
            report.problems.push_back({"mount", row.id,
                                       "refcount " + std::to_string(refs) + " but not mounted"});
        }
        if (refs == 0 && prepared) {
            report.problems.push_back({"mount", row.id, "mounted but refcount is 0"});
        }
        check_index(driver, row, full, report);
    }
    for (const std::string& n : natives) {
        if (!known.count(n)) {
            report.problems.push_back(
                {"unknown", "", "native layer " + n + " is not in the catalog"});
        }
    }
}

FsckReport check(Driver& driver, bool full) {
    StoreLock lock(driver.root());
    FsckReport report;
    check_sqlite(driver.catalog(), report);
    check_layers(driver, full, report);
    return report;
}

}  // namespace

FsckReport run_fsck(Driver& driver, bool repair, bool full) {
    FsckReport report = check(driver, full);
    if (!repair || report.problems.empty()) return report;
    std::vector<std::string> repairs = driver.recover();
    report = check(driver, full);
    report.repairs = std::move(repairs);
    return report;
}

}  // namespace strata
