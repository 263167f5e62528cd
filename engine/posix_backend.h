// The posix backend: layers as directories on the host file system.
//
// Under its root directory:
//   layers/<id>/           the layer's own changes (overlay_format.h)
//   layers/<id>-removing/  a layer being removed
//   mnt/<id>/              where prepare() shows the merged tree
//   work/<id>/             overlayfs work directory of a mounted sandbox
//   work/<id>.copy         present while a copied tree of <id> is in use
//   empty/                 an empty directory (overlayfs needs two lowers)
//
// Two mount modes give the same tree. Overlay mounts the chain with the
// kernel's overlayfs (a sandbox's directory is the upperdir, so writes land
// in it directly). Copy materializes the chain into mnt/<id> and, when a
// sandbox is unprepared, captures what changed back into its directory; for
// a read-only layer the copy is discarded. Auto picks overlay if a probe
// mount succeeds.
#pragma once

#include <filesystem>
#include <optional>

#include "engine/backend.h"

namespace strata {

enum class MountMode { Auto, Overlay, Copy };
MountMode parse_mount_mode(const std::string& s);  // "auto" | "overlay" | "copy"
const char* mount_mode_name(MountMode mode);

class PosixBackend : public Backend {
public:
    PosixBackend(std::filesystem::path root, MountMode mode, ApplyLimits limits = {});
    PosixBackend(const PosixBackend&) = delete;
    PosixBackend& operator=(const PosixBackend&) = delete;

    // The mode actually used (Auto resolved by probing once).
    MountMode effective_mode();

    std::string name() const override { return "posix"; }
    std::vector<std::pair<std::string, std::string>> status() override;
    void create_layer(const std::string& id, const Chain& parents) override;
    void create_sandbox(const std::string& id, const Chain& parents) override;
    void expand_sandbox(const std::string& id, uint64_t bytes) override;
    void destroy(const std::string& id) override;
    void rename_for_removal(const std::string& id) override;
    void activate(const std::string&) override {}
    void deactivate(const std::string&) override {}
    std::string prepare(const std::string& id, const Chain& parents,
                        const PrepareOptions& options) override;
    void unprepare(const std::string& id, const Chain& parents, bool writable) override;
    bool is_prepared(const std::string& id) override;
    std::string mount_path(const std::string& id) override;
    bool exists(const std::string& id) override;
    std::vector<std::string> list() override;
    std::vector<std::string> collect_leftovers() override;
    ApplyResult write_layer(const std::string& id, const Chain& parents, ByteSource& tar,
                            const std::function<void(const FileRecord&)>& on_entry) override;
    void read_layer(const std::string& id, ByteSink& out) override;
    std::vector<Change> changes(const std::string& id, const Chain& parents) override;
    uint64_t size(const std::string& id) override;
    void sync(const std::string& id) override;

    std::filesystem::path layer_dir(const std::string& id) const;

private:
    std::vector<std::filesystem::path> dirs(const Chain& ids) const;
    void make_layer_dir(const std::string& id);
    void mount_overlay(const std::string& id, const Chain& parents, bool writable);
    bool probe_overlay();
    std::filesystem::path copy_marker(const std::string& id) const;

    std::filesystem::path root_;
    MountMode mode_;
    ApplyLimits limits_;
    std::optional<MountMode> resolved_;
};

// Whether `path` is a mount point right now (from /proc/self/mountinfo).
bool is_mount_point(const std::filesystem::path& path);

// Fsyncs the directory `dir` (after a rename or create in it).
void sync_dir(const std::filesystem::path& dir);

}  // namespace strata
