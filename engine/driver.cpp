// Store opening, ids, locking, and the create/remove/apply sequences.
#include "engine/driver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/error.h"
#include "engine/fault.h"
#include "engine/recovery.h"

namespace fs = std::filesystem;

namespace strata {

namespace {

// Rows of the file index are written in batches while a layer is applying;
// they die with the row if the apply fails.
constexpr size_t kIndexBatch = 2000;

// A store root must be a real directory owned by us and writable by no one
// else: anyone who can write it can plant layers or swap the catalog.
void check_owned_private(const fs::path& p, const char* what) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw_errno(std::string(what) + " " + p.string());
    if (st.st_uid != ::geteuid()) {
        throw Error(std::string(what) + " " + p.string() + ": owned by uid " +
                    std::to_string(st.st_uid) + ", not by this user; refusing to use it");
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        throw Error(std::string(what) + " " + p.string() + ": writable by others (mode " + mode +
                    "); refusing to use it");
    }
}

// Checks everything before changing anything: a refused store is left
// exactly as it was.
// LIMITATION: the parent directories of the store are not checked; one that
// others can write lets them rename the store away and put another in its
// place (walking the parents up to "/", as OpenSSH's StrictModes does,
// would lift it).
void prepare_root(const fs::path& root) {
    struct stat st;
    if (::lstat(root.c_str(), &st) != 0) {
        std::error_code ec;
        fs::create_directories(root.parent_path(), ec);
        if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
            throw_errno("store " + root.string() + ": cannot create");
        }
    } else if (S_ISLNK(st.st_mode)) {
        throw Error("store " + root.string() +
                    ": is a symlink; give the directory it points to as --root");
    } else if (!S_ISDIR(st.st_mode)) {
        throw Error("store " + root.string() + ": not a directory");
    }
    check_owned_private(root, "store");
    fs::path catalog = root / "catalog.db";
    if (::lstat(catalog.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) throw Error("catalog " + catalog.string() + ": not a file");
        check_owned_private(catalog, "catalog");
    }
    ::chmod(root.c_str(), 0700);
}

std::string opts_json(const std::vector<std::pair<std::string, std::string>>& opts) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : opts) j[k] = v;
    return j.dump();
}

}  // namespace

uint64_t parse_size(const std::string& text) {
    size_t used = 0;
    unsigned long long n = 0;
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) {
        try {
            n = std::stoull(text, &used);
        } catch (const std::exception&) {
            used = 0;
        }
    }
    std::string unit = text.substr(used);
    for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!unit.empty() && unit.back() == 'B') unit.pop_back();
    if (unit.size() == 2 && unit[1] == 'I') unit.pop_back();
    const std::string units = "KMGTP";
    size_t shift = unit.empty() ? 0 : (units.find(unit) + 1) * 10;
    bool known_unit = unit.empty() || (unit.size() == 1 && units.find(unit) != std::string::npos);
    if (used == 0 || !known_unit || (shift > 0 && n > (~0ull >> shift))) {
        throw Error("size '" + text + "': expected a number of bytes, optionally with K, M, G, "
                    "T or P");
    }
    return static_cast<uint64_t>(n) << shift;
}

void validate_layer_id(const std::string& id) {
    auto refuse = [&id](const std::string& why) {
        std::string shown;
        for (unsigned char c : id) {
            if (c < 0x20 || c >= 0x7f) {
                char buf[5];
                std::snprintf(buf, sizeof buf, "\\x%02x", c);
                shown += buf;
            } else {
                shown.push_back(static_cast<char>(c));
            }
        }
        throw Error("invalid layer id '" + shown + "': " + why);
    };
    if (id.empty()) refuse("empty");
    if (id.size() > 128) refuse("longer than 128 bytes");
    for (unsigned char c : id) {
        bool ok = std::isalnum(c) || c == '.' || c == '_' || c == '-';
        if (!ok) refuse("only letters, digits, '.', '_' and '-' are allowed");
    }
    if (id[0] == '.' || id[0] == '-') refuse("must not start with '.' or '-'");
    if (is_removal_name(id)) refuse("must not end in '-removing'");
}

StoreLock::StoreLock(const fs::path& root, bool wait) {
    fs::path file = root / "lock";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw_errno("store lock " + file.string());
    while (::flock(fd_, wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0) {
        if (!wait && errno == EWOULDBLOCK) {
            ::close(fd_);
            fd_ = -1;
            return;
        }
        if (errno != EINTR) {
            int err = errno;
            ::close(fd_);
            throw_errno("store lock " + file.string(), err);
        }
    }
}

StoreLock::~StoreLock() {
    if (fd_ >= 0) ::close(fd_);
}

std::string current_boot_id() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id.empty() ? "unknown" : id;
}

std::string new_native_id() {
    std::random_device rd;
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 8; ++i) {
        unsigned v = rd();
        for (int j = 0; j < 4; ++j) {
            out.push_back(hex[v & 0xf]);
            v >>= 4;
        }
    }
    return out;
}

Driver::Driver(const StoreOptions& options) : root_(options.root), boot_id_(current_boot_id()) {
    prepare_root(root_);
    StoreLock lock(root_, /*wait=*/false);
    catalog_ = std::make_unique<Catalog>(root_ / "catalog.db", Catalog::Mode::ReadWrite);
    ::chmod((root_ / "catalog.db").c_str(), 0600);
    auto posix = std::make_unique<PosixBackend>(root_, options.mount_mode, options.limits);
    posix_ = posix.get();
    backend_ = with_fault_injection(std::move(posix));
    if (lock.held()) {
        repaired_at_open_ = run_recovery(*catalog_, *backend_, boot_id_);
        recovered_ = true;
    } else {
        spdlog::debug("open: store {} is busy; recovery deferred to the first mutation",
                      root_.string());
    }
}

void Driver::ensure_recovered() {
    if (recovered_) return;
    repaired_at_open_ = run_recovery(*catalog_, *backend_, boot_id_);
    recovered_ = true;
}

Driver::~Driver() = default;

LayerRow Driver::ready_layer(const std::string& id) {
    validate_layer_id(id);
    auto row = catalog_->layer(id);
    if (!row || row->state != LayerState::Ready) throw NotFound("layer " + id + " does not exist");
    return *row;
}

bool Driver::exists(const std::string& id) {
    validate_layer_id(id);
    auto row = catalog_->layer(id);
    return row && row->state == LayerState::Ready;
}

Chain Driver::native_chain(const std::string& id) {
    Chain out;
    for (const auto& a : catalog_->chain(id)) out.push_back(catalog_->layer(a)->native_id);
    return out;
}

void Driver::check_parent_arg(const LayerRow& row, const std::optional<std::string>& parent) {
    if (!parent || parent->empty()) return;
    if (row.parent != parent) {
        // LIMITATION: diffs are against the layer's own parent only; a diff
        // against another ancestor would need the layers between squashed.
        throw Error("layer " + row.id + ": --parent " + *parent + " is not its parent (" +
                    row.parent.value_or("none") + ")");
    }
}

void Driver::destroy_failed(const LayerRow& row, const std::string& step, const std::string& why) {
    // The caller reports the error itself; this is the operator's trace.
    spdlog::info("{}: layer {} failed: {}; destroying it", step, row.id, why);
    try {
        backend_->destroy(row.native_id);
        Catalog::Txn txn(*catalog_);
        catalog_->delete_layer(row.id);
        catalog_->log(step, row.id, "failed", why);
        txn.commit();
    } catch (const std::exception& e) {
        // Recovery at the next open finishes the job: the row is an intent.
        spdlog::error("{}: could not undo layer {}: {}", step, row.id, e.what());
    }
}

void Driver::create(const std::string& id, const CreateOptions& options) {
    validate_layer_id(id);
    if (options.parent) validate_layer_id(*options.parent);
    StoreLock lock(root_);
    ensure_recovered();

    if (catalog_->layer(id)) throw Error("create layer " + id + ": it already exists");
    if (options.parent) ready_layer(*options.parent);
    LayerRow row;
    row.id = id;
    row.native_id = new_native_id();
    row.parent = options.parent;
    row.kind = options.sandbox ? LayerKind::Sandbox : LayerKind::Layer;
    row.state = LayerState::Creating;
    row.created = now_rfc3339();
    row.storage_opts = opts_json(options.storage_opts);
    {
        Catalog::Txn txn(*catalog_);
        catalog_->insert_layer(row);
        txn.commit();
    }
    crash_point("create.after_intent");

    try {
        Chain parents = native_chain(id);
        if (options.sandbox) {
            backend_->create_sandbox(row.native_id, parents);
            for (const auto& [k, v] : options.storage_opts) {
                if (k == "size") backend_->expand_sandbox(row.native_id, parse_size(v));
            }
        } else {
            backend_->create_layer(row.native_id, parents);
        }
        crash_point("create.after_native");
        Catalog::Txn txn(*catalog_);
        catalog_->set_ready(id, 0, "");
        catalog_->log("create", id, "ok", kind_name(row.kind));
        txn.commit();
    } catch (const std::exception& e) {
        destroy_failed(row, "create", e.what());
        throw Error(std::string("create layer ") + id + ": " + e.what());
    }
    crash_point("create.after_commit");
    spdlog::info("create: layer {} ready ({})", id, kind_name(row.kind));
}

void Driver::remove(const std::string& id) {
    validate_layer_id(id);
    StoreLock lock(root_);
    ensure_recovered();
    LayerRow row = ready_layer(id);

    auto mount = catalog_->mount(id);
    if (mount && mount->refcount > 0) {
        throw Error("remove layer " + id + ": it is mounted (refcount " +
                    std::to_string(mount->refcount) + ")");
    }
    auto children = catalog_->children(id);
    if (!children.empty()) {
        throw Error("remove layer " + id + ": it is the parent of " + children.front() +
                    (children.size() > 1 ? " and " + std::to_string(children.size() - 1) +
                                               " more"
                                         : ""));
    }
    auto images = catalog_->images_using(id);
    if (!images.empty()) {
        throw Error("remove layer " + id + ": it is the top layer of image " + images.front());
    }

    {
        Catalog::Txn txn(*catalog_);
        catalog_->set_state(id, LayerState::Removing);
        txn.commit();
    }
    crash_point("remove.after_intent");
    try {
        backend_->unprepare(row.native_id, native_chain(id), row.kind == LayerKind::Sandbox);
        backend_->rename_for_removal(row.native_id);
        crash_point("remove.after_rename");
        backend_->destroy(row.native_id);
        crash_point("remove.after_destroy");
    } catch (const std::exception& e) {
        // The row stays in `removing`; recovery at the next open finishes it.
        throw Error("remove layer " + id + ": " + e.what() +
                    " (the removal is finished by the next recovery)");
    }
    Catalog::Txn txn(*catalog_);
    catalog_->delete_layer(id);
    catalog_->log("remove", id, "ok");
    txn.commit();
    spdlog::info("remove: layer {} removed", id);
}

void Driver::index_and_apply(const LayerRow& row, ByteSource& tar, const ApplyCheck& check) {
    std::vector<FileRecord> batch;
    int64_t seq = catalog_->file_count(row.id);
    auto flush = [&] {
        if (batch.empty()) return;
        Catalog::Txn txn(*catalog_);
        catalog_->insert_files(row.id, seq, batch);
        txn.commit();
        seq += static_cast<int64_t>(batch.size());
        batch.clear();
    };
    Chain parents = native_chain(row.id);
    auto on_entry = [&](const FileRecord& r) {
        batch.push_back(r);
        if (batch.size() >= kIndexBatch) flush();
    };
    ApplyResult result = backend_->write_layer(row.native_id, parents, tar, on_entry);
    flush();
    crash_point("apply.after_data");
    if (check) check(result);
    backend_->sync(row.native_id);
    crash_point("apply.before_commit");

    uint64_t size = backend_->size(row.native_id);
    Catalog::Txn txn(*catalog_);
    catalog_->set_ready(row.id, size, result.diff_digest);
    catalog_->log("apply-diff", row.id, "ok",
                  result.diff_digest + " " + std::to_string(result.entries) + " entries");
    txn.commit();
    spdlog::info("apply-diff: layer {} ready ({} entries, {} bytes, {})", row.id, result.entries,
                 size, result.diff_digest);
}

uint64_t Driver::apply_diff(const std::string& id, const std::optional<std::string>& parent,
                            ByteSource& tar, const ApplyOptions& options) {
    validate_layer_id(id);
    if (parent && !parent->empty()) validate_layer_id(*parent);
    StoreLock lock(root_);
    ensure_recovered();

    std::optional<LayerRow> existing = catalog_->layer(id);
    LayerRow row;
    if (existing && existing->state == LayerState::Ready && !options.reuse_digest.empty() &&
        existing->diff_digest == options.reuse_digest && existing->parent == parent) {
        if (options.reused) *options.reused = true;
        return existing->size;
    }
    if (existing) {
        row = ready_layer(id);
        check_parent_arg(row, parent);
        if (!row.diff_digest.empty() || catalog_->file_count(id) > 0) {
            throw Error("apply-diff layer " + id + ": it already holds an applied diff (" +
                        row.diff_digest + "); applied layers are immutable");
        }
        if (row.kind == LayerKind::Sandbox) {
            throw Error("apply-diff layer " + id + ": it is a sandbox; apply to a read-only layer");
        }
        auto mount = catalog_->mount(id);
        if (mount && mount->refcount > 0) throw Error("apply-diff layer " + id + ": it is mounted");
        if (!catalog_->children(id).empty()) {
            throw Error("apply-diff layer " + id + ": it has children");
        }
        Catalog::Txn txn(*catalog_);
        catalog_->set_state(id, LayerState::Applying);
        txn.commit();
    } else {
        if (parent && !parent->empty()) ready_layer(*parent);
        row.id = id;
        row.native_id = new_native_id();
        if (parent && !parent->empty()) row.parent = parent;
        row.kind = LayerKind::Layer;
        row.state = LayerState::Applying;
        row.created = now_rfc3339();
        row.storage_opts = "{}";
        Catalog::Txn txn(*catalog_);
        catalog_->insert_layer(row);
        txn.commit();
    }

    crash_point("apply.after_intent");
    try {
        if (!existing) backend_->create_layer(row.native_id, native_chain(id));
        index_and_apply(row, tar, options.check);
    } catch (const std::exception& e) {
        destroy_failed(row, "apply-diff", e.what());
        throw Error(std::string("apply-diff layer ") + id + ": " + e.what());
    }
    crash_point("apply.after_commit");
    return catalog_->layer(id)->size;
}

}  // namespace strata
