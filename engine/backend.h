// The native layer interface: strata's equivalent of LevelDB's Env.
//
// Its shape follows the layer functions of Windows' vmcompute.dll (create,
// destroy, activate, prepare, ...), so the transaction logic in the driver is
// the same on every platform. Layers are named by native id (the catalog
// maps caller ids to native ids); `parents` is always the chain of the layer,
// nearest parent first, as native ids.
//
// No call touches the catalog. Every call throws strata::Error on failure
// with a message that names the layer and the step; a failed call may leave
// partial native state behind, which the driver removes with destroy().
// Implementations are not required to be thread-safe: the driver serialises
// mutating calls with the store lock.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/byte_stream.h"
#include "engine/layer_codec.h"

namespace strata {

using Chain = std::vector<std::string>;

struct PrepareOptions {
    bool writable = false;    // a sandbox: writes through the path belong to the layer
    std::string mount_label;  // SELinux-style label, "" for none
};

class Backend {
public:
    virtual ~Backend() = default;

    // A short name for logs and `status` ("posix", "hcs").
    virtual std::string name() const = 0;

    // Facts for `status`, as key/value pairs.
    virtual std::vector<std::pair<std::string, std::string>> status() = 0;

    // Creates an empty read-only layer. REQUIRES: !exists(id).
    virtual void create_layer(const std::string& id, const Chain& parents) = 0;

    // Creates an empty writable sandbox on top of `parents`.
    // REQUIRES: !exists(id).
    virtual void create_sandbox(const std::string& id, const Chain& parents) = 0;

    // Grows a sandbox's scratch space to `bytes`, where the backend has one.
    virtual void expand_sandbox(const std::string& id, uint64_t bytes) = 0;

    // Removes a layer and everything it holds, including a leftover removal
    // copy. Absent layers are fine. REQUIRES: the layer is not prepared.
    virtual void destroy(const std::string& id) = 0;

    // Moves a layer out of the way under its removal name so that a crash
    // leaves something recognisable; destroy() finishes the job.
    virtual void rename_for_removal(const std::string& id) = 0;

    // Windows needs a layer activated before it is prepared; elsewhere these
    // do nothing.
    virtual void activate(const std::string& id) = 0;
    virtual void deactivate(const std::string& id) = 0;

    // Makes the merged tree of [id] + parents available at a path and returns
    // it. A sandbox is writable there and whatever is written belongs to it;
    // a read-only layer is shown read-only. REQUIRES: exists(id).
    virtual std::string prepare(const std::string& id, const Chain& parents,
                                const PrepareOptions& options) = 0;

    // Undoes prepare(). For a copied (not overlaid) writable layer this
    // first records what was written into the layer. Not prepared is fine.
    virtual void unprepare(const std::string& id, const Chain& parents, bool writable) = 0;

    // Whether the layer is prepared right now (for example mounted).
    virtual bool is_prepared(const std::string& id) = 0;

    // Where prepare() puts the layer's tree.
    virtual std::string mount_path(const std::string& id) = 0;

    // Whether the native layer exists (its removal copy does not count).
    virtual bool exists(const std::string& id) = 0;

    // Every native layer present, removal copies included (by their
    // removal names), for recovery and fsck.
    virtual std::vector<std::string> list() = 0;

    // Removes scratch state no operation is using (half-built copies, mount
    // and work directories of layers that no longer exist) and returns one
    // line per thing removed. REQUIRES: the store lock is held.
    virtual std::vector<std::string> collect_leftovers() = 0;

    // The layer writer: applies a layer tar to an existing, empty layer.
    virtual ApplyResult write_layer(const std::string& id, const Chain& parents, ByteSource& tar,
                                    const std::function<void(const FileRecord&)>& on_entry) = 0;

    // The layer reader: writes the layer's own changes as a layer tar.
    virtual void read_layer(const std::string& id, ByteSink& out) = 0;

    // The layer's own changes relative to its parents.
    virtual std::vector<Change> changes(const std::string& id, const Chain& parents) = 0;

    // Bytes of content the layer itself holds.
    virtual uint64_t size(const std::string& id) = 0;

    // Makes everything written to the layer durable.
    virtual void sync(const std::string& id) = 0;
};

// The name rename_for_removal() gives a layer, and its inverse test.
std::string removal_name(const std::string& id);
bool is_removal_name(const std::string& name);

}  // namespace strata
