// Test fixtures shared by the suites: temporary directories that clean up
// after themselves (unmounting anything mounted below them first), running
// the real `strata` binary, and finding the shared image archives.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata::test {

// A fresh directory under /tmp, removed with everything in it (after
// unmounting every mount below it) when the object goes away, even when
// the test failed.
class TempDir {
public:
    explicit TempDir(const std::string& tag = "strata-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

private:
    std::filesystem::path path_;
};

// Unmounts every mount point at or below `dir`, deepest first.
void unmount_below(const std::filesystem::path& dir);

struct RunResult {
    int exit_code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

// Runs the strata binary with `args` (plus `--root root` first when root is
// not empty); `stdin_file`, when not empty, is fed to its standard input.
RunResult run_strata(const std::filesystem::path& root, const std::vector<std::string>& args,
                     const std::string& stdin_file = "",
                     const std::vector<std::string>& env = {});

// Starts the strata binary without waiting (output discarded); returns its
// pid. wait_exit() reaps it and returns its exit code (128 + signal).
int spawn_strata(const std::filesystem::path& root, const std::vector<std::string>& args,
                 const std::string& stdin_file = "");
int wait_exit(int pid);

// A store in its own temporary directory, driven through the binary.
struct TestStore {
    explicit TestStore(const std::string& tag = "strata-store") : dir(tag) {}

    TempDir dir;
    std::filesystem::path root = dir / "store";

    RunResult run(const std::vector<std::string>& args, const std::string& stdin_file = "") {
        return run_strata(root, args, stdin_file);
    }

    // Runs a verb that must succeed (the test stops otherwise); its stdout.
    std::string ok(const std::vector<std::string>& args, const std::string& stdin_file = "");

    nlohmann::json ok_json(const std::vector<std::string>& args) {
        return nlohmann::json::parse(ok(args));
    }
};

// Runs a shell command, returning its exit code and output.
RunResult run_shell(const std::string& command);

// The folder of shared fixtures ($STRATA_SHARED, else the build default).
std::filesystem::path shared_dir();

// The shared image archive `rel` (e.g. "images/tzdata-docker.tar").
std::filesystem::path shared_file(const std::string& rel);

// The whole content of a file ("" if it cannot be read).
std::string read_file(const std::filesystem::path& p);

// The last non-empty line of `text`.
std::string last_line(const std::string& text);

}  // namespace strata::test
