#include "engine/fsck.h"

#include <SQLiteCpp/Statement.h>

#include <set>

#include "engine/error.h"

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

void check_layers(Catalog& catalog, Backend& backend, FsckReport& report) {
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
    }
    for (const std::string& n : natives) {
        if (!known.count(n)) {
            report.problems.push_back({"unknown", "", "native layer " + n + " is not in the catalog"});
        }
    }
}

FsckReport check(Driver& driver) {
    FsckReport report;
    check_sqlite(driver.catalog(), report);
    check_layers(driver.catalog(), driver.backend(), report);
    return report;
}

}  // namespace

FsckReport run_fsck(Driver& driver, bool repair) {
    FsckReport report = check(driver);
    if (!repair || report.problems.empty()) return report;
    std::vector<std::string> repairs = driver.recover();
    report = check(driver);
    report.repairs = std::move(repairs);
    return report;
}

}  // namespace strata
