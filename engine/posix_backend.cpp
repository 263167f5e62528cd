#include "engine/posix_backend.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/copy_mount.h"
#include "engine/error.h"

namespace fs = std::filesystem;

namespace strata {

namespace {

constexpr const char kRemovingSuffix[] = "-removing";

// Unescapes the octal escapes (\040) /proc/self/mountinfo uses in paths.
std::string unescape_mountinfo(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
            out.push_back(static_cast<char>(v));
            i += 3;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

void remove_tree(const fs::path& p, const std::string& what) {
    std::error_code ec;
    fs::remove_all(p, ec);
    if (ec) throw Error(what + ": cannot remove " + p.string() + ": " + ec.message());
}

}  // namespace

std::string removal_name(const std::string& id) { return id + kRemovingSuffix; }

bool is_removal_name(const std::string& name) {
    const size_t n = sizeof(kRemovingSuffix) - 1;
    return name.size() > n && name.compare(name.size() - n, n, kRemovingSuffix) == 0;
}

MountMode parse_mount_mode(const std::string& s) {
    if (s == "auto" || s.empty()) return MountMode::Auto;
    if (s == "overlay") return MountMode::Overlay;
    if (s == "copy") return MountMode::Copy;
    throw Error("unknown mount mode '" + s + "' (expected auto, overlay or copy)");
}

const char* mount_mode_name(MountMode mode) {
    switch (mode) {
        case MountMode::Auto: return "auto";
        case MountMode::Overlay: return "overlay";
        case MountMode::Copy: return "copy";
    }
    return "?";
}

bool is_mount_point(const fs::path& path) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    const std::string want = path.lexically_normal().string();
    while (std::getline(in, line)) {
        // id parent major:minor root mount-point ...
        std::istringstream fields(line);
        std::string id, parent, devno, root, point;
        fields >> id >> parent >> devno >> root >> point;
        if (unescape_mountinfo(point) == want) return true;
    }
    return false;
}

void sync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("open directory " + dir.string() + " to sync it");
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw_errno("fsync " + dir.string(), err);
}

PosixBackend::PosixBackend(fs::path root, MountMode mode, ApplyLimits limits)
    : root_(std::move(root)), mode_(mode), limits_(limits) {
    for (const char* sub : {"layers", "mnt", "work", "empty"}) {
        std::error_code ec;
        fs::create_directories(root_ / sub, ec);
        if (ec) throw Error("posix backend: cannot create " + (root_ / sub).string() + ": " +
                            ec.message());
    }
}

fs::path PosixBackend::layer_dir(const std::string& id) const { return root_ / "layers" / id; }

std::vector<fs::path> PosixBackend::dirs(const Chain& ids) const {
    std::vector<fs::path> out;
    for (const auto& id : ids) out.push_back(layer_dir(id));
    return out;
}

MountMode PosixBackend::effective_mode() {
    if (mode_ != MountMode::Auto) return mode_;
    if (!resolved_) resolved_ = probe_overlay() ? MountMode::Overlay : MountMode::Copy;
    return *resolved_;
}

bool PosixBackend::probe_overlay() {
    fs::path probe = root_ / "work" / (".probe-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(probe, ec);
    fs::create_directories(probe / "lower", ec);
    fs::create_directories(probe / "upper", ec);
    fs::create_directories(probe / "work", ec);
    fs::create_directories(probe / "mnt", ec);
    std::string opts = "lowerdir=" + (probe / "lower").string() +
                       ",upperdir=" + (probe / "upper").string() +
                       ",workdir=" + (probe / "work").string();
    bool ok = ::mount("overlay", (probe / "mnt").c_str(), "overlay", 0, opts.c_str()) == 0;
    if (ok) ::umount2((probe / "mnt").c_str(), MNT_DETACH);
    fs::remove_all(probe, ec);
    spdlog::debug("posix: overlayfs probe {}", ok ? "succeeded" : "failed");
    return ok;
}

std::vector<std::pair<std::string, std::string>> PosixBackend::status() {
    return {{"Backend", "posix"},
            {"Root Dir", root_.string()},
            {"Mount Mode", mount_mode_name(effective_mode())},
            {"Native Layers", std::to_string(list().size())}};
}

void PosixBackend::make_layer_dir(const std::string& id) {
    fs::path dir = layer_dir(id);
    if (::mkdir(dir.c_str(), 0755) != 0) throw_errno("create layer " + id + ": mkdir " +
                                                     dir.string());
    sync_dir(dir.parent_path());
}

void PosixBackend::create_layer(const std::string& id, const Chain&) { make_layer_dir(id); }

void PosixBackend::create_sandbox(const std::string& id, const Chain&) { make_layer_dir(id); }

void PosixBackend::expand_sandbox(const std::string&, uint64_t) {
    // LIMITATION: posix sandboxes share the host file system and have no size
    // of their own; a quota (project quotas on xfs/ext4) would give them one.
}

void PosixBackend::destroy(const std::string& id) {
    for (const fs::path& p : {layer_dir(id), layer_dir(removal_name(id)), root_ / "work" / id,
                              root_ / "mnt" / id}) {
        if (is_mount_point(p)) {
            throw Error("destroy layer " + id + ": " + p.string() + " is still mounted");
        }
        remove_tree(p, "destroy layer " + id);
    }
    sync_dir(root_ / "layers");
}

void PosixBackend::rename_for_removal(const std::string& id) {
    fs::path from = layer_dir(id), to = layer_dir(removal_name(id));
    if (!fs::exists(from)) return;
    remove_tree(to, "remove layer " + id);
    if (::rename(from.c_str(), to.c_str()) != 0) {
        throw_errno("remove layer " + id + ": rename " + from.string());
    }
    sync_dir(root_ / "layers");
}

bool PosixBackend::exists(const std::string& id) { return fs::is_directory(layer_dir(id)); }

std::vector<std::string> PosixBackend::list() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(root_ / "layers")) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string PosixBackend::mount_path(const std::string& id) {
    return (root_ / "mnt" / id).string();
}

bool PosixBackend::is_prepared(const std::string& id) {
    fs::path mnt = mount_path(id);
    return is_mount_point(mnt) || (fs::exists(copy_marker(id)) && fs::is_directory(mnt));
}

ApplyResult PosixBackend::write_layer(const std::string& id, const Chain& parents,
                                      ByteSource& tar,
                                      const std::function<void(const FileRecord&)>& on_entry) {
    return apply_layer_tar(tar, layer_dir(id), dirs(parents), on_entry, limits_);
}

void PosixBackend::read_layer(const std::string& id, ByteSink& out) {
    write_layer_tar(layer_dir(id), out);
}

std::vector<Change> PosixBackend::changes(const std::string& id, const Chain& parents) {
    return layer_changes(layer_dir(id), dirs(parents));
}

uint64_t PosixBackend::size(const std::string& id) { return layer_content_size(layer_dir(id)); }

void PosixBackend::sync(const std::string& id) {
    // syncfs flushes every dirty file and directory of the file system that
    // holds the layer: one call instead of an fsync per file.
    fs::path dir = layer_dir(id);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("sync layer " + id + ": open " + dir.string());
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw_errno("sync layer " + id + ": syncfs", err);
}

}  // namespace strata
