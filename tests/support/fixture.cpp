#include "tests/support/fixture.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

namespace fs = std::filesystem;

namespace strata::test {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

namespace {

std::vector<std::string> mounts_below(const fs::path& dir) {
    std::vector<std::string> out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    const std::string prefix = dir.string();
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, point;
        f >> id >> parent >> dev >> root >> point;
        if (point == prefix || point.rfind(prefix + "/", 0) == 0) out.push_back(point);
    }
    std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
        return a.size() > b.size();
    });
    return out;
}

}  // namespace

TempDir::TempDir(const std::string& tag) {
    std::string templ = (fs::temp_directory_path() / (tag + "-XXXXXX")).string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    unmount_below(path_);
    std::error_code ec;
    fs::remove_all(path_, ec);
}

void unmount_below(const fs::path& dir) {
    for (const auto& m : mounts_below(dir)) {
        if (::umount2(m.c_str(), 0) != 0) ::umount2(m.c_str(), MNT_DETACH);
    }
}

RunResult run_strata(const fs::path& root, const std::vector<std::string>& args,
                     const std::string& stdin_file, const std::vector<std::string>& env) {
    TempDir io("strata-run");
    std::vector<std::string> argv = {STRATA_BINARY};
    if (!root.empty()) {
        argv.push_back("--root");
        argv.push_back(root.string());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& s : argv) cargv.push_back(s.data());
    cargv.push_back(nullptr);

    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> cenv;
    for (auto& s : envs) cenv.push_back(s.data());
    cenv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string in = stdin_file.empty() ? "/dev/null" : stdin_file;
    std::string out = (io.path() / "out").string(), err = (io.path() / "err").string();
    posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = 0;
    RunResult r;
    if (posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data()) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        r.err = "spawn failed";
        return r;
    }
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
}

int spawn_strata(const fs::path& root, const std::vector<std::string>& args,
                 const std::string& stdin_file) {
    std::vector<std::string> argv = {STRATA_BINARY, "--root", root.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& s : argv) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string in = stdin_file.empty() ? "/dev/null" : stdin_file;
    posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

int wait_exit(int pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string TestStore::ok(const std::vector<std::string>& args, const std::string& stdin_file) {
    RunResult r = run(args, stdin_file);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    BOOST_TEST_REQUIRE(r.exit_code == 0,
                       "strata" << cmd << " exited " << r.exit_code << ": " << r.err);
    return r.out;
}

RunResult run_shell(const std::string& command) {
    TempDir io("strata-sh");
    std::string out = (io.path() / "out").string();
    std::string full = "(" + command + ") > " + out + " 2>&1";
    int status = std::system(full.c_str());
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = read_file(out);
    return r;
}

fs::path shared_dir() {
    const char* env = std::getenv("STRATA_SHARED");
    return env && *env ? fs::path(env) : fs::path(STRATA_SHARED_DEFAULT);
}

fs::path shared_file(const std::string& rel) { return shared_dir() / rel; }

std::string last_line(const std::string& text) {
    std::istringstream in(text);
    std::string line, last;
    while (std::getline(in, line)) {
        if (!line.empty()) last = line;
    }
    return last;
}

}  // namespace strata::test
