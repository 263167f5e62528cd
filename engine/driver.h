// The driver: the layer operations of a store, each a crash-safe
// intent-commit sequence over the catalog and a backend.
//
//   create      txn(row creating + chain) -> backend create -> txn(ready)
//   apply_diff  txn(row applying) -> stream tar into the layer, index its
//               files, sync the data -> txn(ready, size, digest)
//   remove      refuse if mounted, a parent or an image's top ->
//               txn(removing) -> backend rename, destroy -> txn(delete rows)
//   get / put   refcounts in the catalog; the first get prepares (mounts),
//               the last put unprepares; a crash between the native step
//               and the commit leaves a mount with refcount 0, which
//               recovery unmounts
//
// On any failure of create or apply_diff the native layer is destroyed and
// its rows deleted before the error propagates. Opening a store runs
// recovery (recovery.h) first. Mutations take the store lock (an exclusive
// flock on <root>/lock) for their whole duration, so processes serialise;
// reads take no lock and see the last committed state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/posix_backend.h"
#include "storage/catalog.h"

namespace strata {

struct StoreOptions {
    std::filesystem::path root;
    MountMode mount_mode = MountMode::Auto;
    ApplyLimits limits;  // what one layer tar may hold (entries, bytes)
};

struct CreateOptions {
    std::optional<std::string> parent;
    bool sandbox = false;
    std::vector<std::pair<std::string, std::string>> storage_opts;
};

// Checked after an applied layer's data is written and before it is marked
// ready; throws Error to refuse the layer (for example a digest mismatch).
using ApplyCheck = std::function<void(const ApplyResult&)>;

struct ApplyOptions {
    ApplyCheck check;
    // When set and the layer already exists, is ready and has this diff
    // digest, the tar is not read and the layer is reused (`reused` is set).
    std::string reuse_digest;
    bool* reused = nullptr;
};

// "10G", "512M", "4096", "1GiB", "2gb" -> bytes (powers of 1024). Throws
// Error naming the text when it is not a size.
uint64_t parse_size(const std::string& text);

// Refuses, before any file-system call, a layer id that is empty, longer
// than 128 bytes, has bytes other than [A-Za-z0-9._-], starts with '.' or
// '-', or ends in "-removing".
void validate_layer_id(const std::string& id);

// The exclusive store lock, held for the lifetime of the object. With
// wait=false it does not block: held() says whether it was taken.
class StoreLock {
public:
    explicit StoreLock(const std::filesystem::path& root, bool wait = true);
    bool held() const { return fd_ >= 0; }
    ~StoreLock();
    StoreLock(const StoreLock&) = delete;
    StoreLock& operator=(const StoreLock&) = delete;

private:
    int fd_ = -1;
};

class Driver {
public:
    // Opens (creating if needed) the store at options.root and runs
    // recovery. If another process holds the store lock (it is mutating, and
    // its own open ran recovery), recovery is deferred to this driver's first
    // mutation, so readers never wait for a writer.
    explicit Driver(const StoreOptions& options);
    ~Driver();
    Driver(const Driver&) = delete;
    Driver& operator=(const Driver&) = delete;

    void create(const std::string& id, const CreateOptions& options);
    void remove(const std::string& id);
    bool exists(const std::string& id);

    // Mounts (refcount + 1) and returns the path.
    std::string get(const std::string& id, const std::string& mount_label);
    // Refcount - 1; unmounts at 0. Throws Error if the layer is not mounted.
    void put(const std::string& id);

    // `parent`, when given, must be the layer's parent.
    void diff(const std::string& id, const std::optional<std::string>& parent, ByteSink& out);
    std::vector<Change> changes(const std::string& id, const std::optional<std::string>& parent);
    uint64_t diff_size(const std::string& id, const std::optional<std::string>& parent);

    // Applies a layer tar to layer `id`, creating the layer (with `parent`)
    // if it does not exist. An existing layer must be an empty read-only one
    // (made by create and never applied): applied layers are immutable.
    // Returns the layer's size in bytes.
    uint64_t apply_diff(const std::string& id, const std::optional<std::string>& parent,
                        ByteSource& tar, const ApplyOptions& options = {});

    std::vector<std::pair<std::string, std::string>> metadata(const std::string& id);
    std::vector<std::pair<std::string, std::string>> status();

    // Releases every mount and collects leftovers. Returns what it did.
    std::vector<std::string> cleanup();

    // Runs recovery again (it also runs at open). Returns what it repaired,
    // including what the recovery at open repaired.
    std::vector<std::string> recover();

    Catalog& catalog() { return *catalog_; }
    Backend& backend() { return *backend_; }
    PosixBackend& posix() { return *posix_; }
    const std::filesystem::path& root() const { return root_; }

    // The layer row, or NotFound naming the id; only ready layers count.
    LayerRow ready_layer(const std::string& id);

private:
    Chain native_chain(const std::string& id);
    void check_parent_arg(const LayerRow& row, const std::optional<std::string>& parent);
    void destroy_failed(const LayerRow& row, const std::string& step, const std::string& why);
    // Runs the deferred recovery, if any. REQUIRES: the store lock is held.
    void ensure_recovered();
    void index_and_apply(const LayerRow& row, ByteSource& tar, const ApplyCheck& check);

    std::filesystem::path root_;
    std::string boot_id_;
    std::unique_ptr<Catalog> catalog_;
    std::unique_ptr<Backend> backend_;
    PosixBackend* posix_ = nullptr;  // the backend under any fault-injection wrapper
    std::vector<std::string> repaired_at_open_;
    bool recovered_ = false;
};

// The id of the running boot (/proc/sys/kernel/random/boot_id).
std::string current_boot_id();

// A fresh random native id (32 hex digits).
std::string new_native_id();

}  // namespace strata
