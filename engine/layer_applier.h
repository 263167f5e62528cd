// The state of one apply_layer_tar run (internal to the tar codec).
//
// An Applier turns tar entries into the overlay form of overlay_format.h
// inside one layer directory. Entries are applied in archive order; a later
// entry for a path replaces an earlier one. Directory modes and times are
// collected in `deferred_` and set after the last entry, because creating
// entries inside a directory changes its mtime. Every path is resolved
// through LayerDirs / safe_path.h, never followed.
//
// The methods throw Error without the entry's name; run() prefixes it.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/layer_codec.h"
#include "engine/layer_dirs.h"
#include "engine/safe_path.h"
#include "engine/tar_input.h"

namespace strata::codec {

class Applier {
  public:
    Applier(const std::filesystem::path& layer_dir, const std::vector<std::filesystem::path>& lower,
            const std::function<void(const FileRecord&)>& on_entry, const ApplyLimits& limits);
    Applier(const Applier&) = delete;
    Applier& operator=(const Applier&) = delete;

    // Reads and applies the whole stream. Throws Error naming the entry.
    ApplyResult run(ByteSource& src);

  private:
    using Comps = std::vector<std::string>;

    // Applies one entry; false when the entry is skipped (aufs metadata).
    bool apply(const TarEntry& e, const Comps& comps, FileRecord& rec);

    // Removes from `e` the xattrs xattr_drop_reason() names, with a warning
    // naming the entry (`shown`) for the first kDropWarnings of them.
    void drop_host_xattrs(TarEntry& e, const std::string& shown);
    static constexpr uint64_t kDropWarnings = 20;

    // layer_apply.cpp: directories, whiteouts, opaque markers.
    void apply_root(const TarEntry& e);
    void apply_dir(const TarEntry& e, const Comps& comps);
    void apply_whiteout(const TarEntry& e, const Comps& comps);
    void apply_opaque(const Comps& comps);
    bool marker_dir_exists(const Comps& comps);
    int prepare_slot(const Comps& comps);
    void finish_dirs();

    // layer_apply_nodes.cpp: files, symlinks, devices, fifos, hard links.
    void apply_file(const TarEntry& e, const Comps& comps);
    // Refuses a sparse map whose runs overlap, go backwards or pass the
    // entry size; returns the bytes of data the map names.
    static uint64_t check_sparse_map(const TarEntry& e);
    void apply_symlink(const TarEntry& e, const Comps& comps);
    void apply_node(const TarEntry& e, const Comps& comps);
    void apply_hardlink(const TarEntry& e, const Comps& comps, FileRecord& rec);
    UniqueFd link_target_dir(const Comps& tcomps, const std::string& trel);
    void copy_up(const LowerChain::Hit& hit, int parent, const std::string& name,
                 const std::string& trel);

    UniqueFd root_;
    LowerChain lower_;
    LayerDirs dirs_;
    const std::function<void(const FileRecord&)>& on_entry_;
    ApplyLimits limits_;
    TarInput* in_ = nullptr;  // the stream being read, during run()
    // LIMITATION: one entry per directory the layer makes, held until the
    // end, so memory grows with the directory count (bounded only by
    // max_entries); keeping them in the catalog's file index would lift it.
    std::map<std::string, DirMeta> deferred_;
    uint64_t content_bytes_ = 0;
    uint64_t dropped_xattrs_ = 0;
};

// Why the xattr `name` of a tar entry is never applied, or nullptr when it
// is kept: trusted.overlay.* and user.overlay.* (overlayfs would read them
// as whiteouts, opaque directories, redirects or metacopy marks), and every
// security.* name except security.capability (SELinux, SMACK, IMA and EVM
// data are the host's to set, through the mount label or its policy).

const char* xattr_drop_reason(const std::string& name);

// Drops overlay-form names (trusted.overlay.*) from an entry's xattrs.
Xattrs content_xattrs(const Xattrs& xattrs);

}  // namespace strata::codec
