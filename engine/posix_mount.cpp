// prepare() and unprepare() of the posix backend, in both mount modes.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <unistd.h>

#include "engine/copy_mount.h"
#include "engine/error.h"
#include "engine/posix_backend.h"

namespace fs = std::filesystem;

namespace strata {

namespace {

// The kernel takes at most one page of mount options.
constexpr size_t kMaxMountData = 4095;

void make_dir(const fs::path& p, const std::string& what) {
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec) throw Error(what + ": cannot create " + p.string() + ": " + ec.message());
}

void touch(const fs::path& p, const std::string& what) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno(what + ": create " + p.string());
    ::fsync(fd);
    ::close(fd);
    sync_dir(p.parent_path());
}

}  // namespace

std::vector<std::string> PosixBackend::collect_leftovers() {
    std::vector<std::string> done;
    auto suffix = [](const std::string& s, const std::string& end) {
        return s.size() > end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
    };
    for (const char* sub : {"mnt", "work"}) {
        for (const auto& e : fs::directory_iterator(root_ / sub)) {
            std::string name = e.path().filename().string();
            std::string id = name;
            if (name.rfind(".probe-", 0) == 0) continue;  // another process's overlay probe
            if (suffix(name, ".tmp")) id.clear();  // a copy never finished
            if (suffix(name, ".copy")) id = name.substr(0, name.size() - 5);
            if (!id.empty() && fs::exists(layer_dir(id))) continue;
            if (is_mount_point(e.path())) continue;  // never delete through a mount
            std::error_code ec;
            fs::remove_all(e.path(), ec);
            if (!ec) done.push_back("removed leftover " + e.path().string());
        }
    }
    return done;
}

fs::path PosixBackend::copy_marker(const std::string& id) const {
    return root_ / "work" / (id + ".copy");
}

void PosixBackend::mount_overlay(const std::string& id, const Chain& parents, bool writable) {
    const std::string what = "mount layer " + id;
    std::string lower;
    auto add_lower = [&lower](const fs::path& p) {
        if (!lower.empty()) lower += ':';
        lower += p.string();
    };
    if (!writable) add_lower(layer_dir(id));
    for (const fs::path& p : dirs(parents)) add_lower(p);
    // overlayfs wants two lowers without an upper, and one with.
    if (!writable || parents.empty()) add_lower(root_ / "empty");

    // Plain upper form only: no redirects, index or metacopy xattrs, so the
    // sandbox directory stays in the form overlay_format.h describes.
    std::string opts = "lowerdir=" + lower + ",redirect_dir=off,index=off,metacopy=off";
    if (writable) {
        fs::path work = root_ / "work" / id;
        make_dir(work, what);
        opts += ",upperdir=" + layer_dir(id).string() + ",workdir=" + work.string();
    }
    if (opts.size() > kMaxMountData) {
        // LIMITATION: long chains overflow the kernel's one-page option
        // limit; short links to layer directories (as overlay2 does) or the
        // fsconfig() lowerdir+ interface would lift it.
        throw Error(what + ": chain of " + std::to_string(parents.size()) +
                    " layers is too long for one overlay mount");
    }

    fs::path mnt = mount_path(id);
    make_dir(mnt, what);
    unsigned long flags = writable ? 0 : MS_RDONLY;
    if (::mount("overlay", mnt.c_str(), "overlay", flags, opts.c_str()) != 0) {
        throw_errno(what + ": overlay mount at " + mnt.string());
    }
}

std::string PosixBackend::prepare(const std::string& id, const Chain& parents,
                                  const PrepareOptions& options) {
    if (!options.mount_label.empty()) {
        // LIMITATION: the mount label is recorded but not applied; an SELinux
        // host would pass it as the overlay `context=` option.
        spdlog::debug("posix: mount label '{}' for layer {} recorded only", options.mount_label,
                      id);
    }
    if (is_prepared(id)) return mount_path(id);
    if (effective_mode() == MountMode::Overlay) {
        mount_overlay(id, parents, options.writable);
        return mount_path(id);
    }

    // Copy mode: build the tree beside its final place, then rename it in
    // and drop the marker, so a crash never leaves a half-built tree in use.
    const std::string what = "mount layer " + id + " (copy)";
    fs::path mnt = mount_path(id);
    fs::path tmp = mnt.string() + ".tmp";
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::remove_all(mnt, ec);
    make_dir(tmp, what);
    Chain all{id};
    all.insert(all.end(), parents.begin(), parents.end());
    materialize(dirs(all), tmp);
    if (::rename(tmp.c_str(), mnt.c_str()) != 0) throw_errno(what + ": rename " + tmp.string());
    sync_dir(mnt.parent_path());
    touch(copy_marker(id), what);
    return mount_path(id);
}

void PosixBackend::unprepare(const std::string& id, const Chain& parents, bool writable) {
    const std::string what = "unmount layer " + id;
    fs::path mnt = mount_path(id);
    std::error_code ec;
    if (is_mount_point(mnt)) {
        if (::umount2(mnt.c_str(), 0) != 0) throw_errno(what + ": umount " + mnt.string());
        if (is_mount_point(mnt)) throw Error(what + ": " + mnt.string() + " is still mounted");
    } else if (fs::exists(copy_marker(id))) {
        if (writable && fs::is_directory(mnt)) {
            capture(mnt, dirs(parents), layer_dir(id));
        } else if (writable) {
            spdlog::warn("unmount layer {}: copied tree {} is gone; nothing to capture", id,
                         mnt.string());
        }
        fs::remove(copy_marker(id), ec);
        sync_dir(copy_marker(id).parent_path());
    }
    fs::remove_all(mnt, ec);
    if (ec) throw Error(what + ": cannot remove " + mnt.string() + ": " + ec.message());
    fs::remove_all(root_ / "work" / id, ec);
}

}  // namespace strata
