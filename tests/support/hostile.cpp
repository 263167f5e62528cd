// Store, canary, snapshots, raw tar blocks and memory-limited runs for the
// hostile-input suites (see hostile.h).
#include "tests/support/hostile.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/digest.h"
#include "engine/layer_codec.h"
#include "tests/support/tar_builder.h"

extern char** environ;

namespace fs = std::filesystem;

namespace strata::test {

namespace raw {

namespace {

constexpr size_t kBlock = 512;

void put(std::string& block, size_t offset, size_t width, const std::string& value) {
    block.replace(offset, std::min(width, value.size()), value.substr(0, width));
}

// `v` as octal digits filling `width - 1` bytes, then a NUL.
std::string octal(uint64_t v, size_t width) {
    std::string digits(width - 1, '0');
    for (size_t i = width - 1; i-- > 0 && v != 0; v >>= 3) digits[i] = char('0' + (v & 7));
    return digits + '\0';
}

}  // namespace

std::string header(const Header& h) {
    std::string b(kBlock, '\0');
    put(b, 0, 100, h.name);
    put(b, 100, 8, octal(h.mode, 8));
    put(b, 108, 8, octal(h.uid, 8));
    put(b, 116, 8, octal(h.gid, 8));
    put(b, 124, 12, h.size_field.empty() ? octal(h.size, 12) : h.size_field);
    put(b, 136, 12, octal(static_cast<uint64_t>(h.mtime), 12));
    b[156] = h.type;
    put(b, 157, 100, h.link);
    put(b, 257, 8,
        std::string("ustar\0"
                    "00",
                    8));
    put(b, 329, 8, octal(h.dev_major, 8));
    put(b, 337, 8, octal(h.dev_minor, 8));

    // The checksum counts its own field as eight spaces.
    put(b, 148, 8, std::string(8, ' '));
    unsigned sum = 0;
    for (unsigned char c : b) sum += c;
    put(b, 148, 8, octal(sum, 7) + ' ');
    return b;
}

std::string body(const std::string& data) {
    return data + std::string((kBlock - data.size() % kBlock) % kBlock, '\0');
}

std::string file(const std::string& name, const std::string& data, uint32_t mode) {
    return header({.name = name, .mode = mode, .size = data.size()}) + body(data);
}

std::string pax(const std::vector<std::pair<std::string, std::string>>& records, char type) {
    std::string text;
    for (const auto& [key, value] : records) {
        // "<len> key=value\n", where <len> counts its own digits too.
        std::string rest = " " + key + "=" + value + "\n";
        size_t len = rest.size() + 1;
        while (std::to_string(len).size() + rest.size() != len) ++len;
        text += std::to_string(len) + rest;
    }
    return header({.name = "PaxHeader/entry", .type = type, .size = text.size()}) + body(text);
}

std::string gnu_long(const std::string& name, char type) {
    std::string data = name + '\0';
    return header({.name = "././@LongLink", .type = type, .size = data.size()}) + body(data);
}

std::string end() {
    return std::string(2 * kBlock, '\0');
}

}  // namespace raw

namespace {

void write_stream(int fd, const Stream& input) {
    auto put = [fd](const char* p, size_t n) {
        while (n > 0) {
            ssize_t w = ::write(fd, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return false;  // the reader stopped (EPIPE): it has refused the stream
            p += w;
            n -= static_cast<size_t>(w);
        }
        return true;
    };
    if (!put(input.prefix.data(), input.prefix.size())) return;
    std::string zeros(size_t{1} << 20, '\0');
    for (uint64_t left = input.zeros; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
        if (!put(zeros.data(), n)) return;
        left -= n;
    }
    put(input.suffix.data(), input.suffix.size());
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
    std::vector<char*> out;
    for (auto& s : v) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
}

// Whether scan_tree() cannot take the tree below `dirfd` in reasonable
// time: a directory more than `levels` levels down (scan_tree resolves full
// paths) or a file over 1 GiB (scan_tree hashes content, holes included).
// Walked by descriptor, so any depth can be measured.
bool unscannable(int dirfd, int levels) {
    if (levels < 0) return true;
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR* d = dup >= 0 ? ::fdopendir(dup) : nullptr;
    if (d == nullptr) {
        if (dup >= 0) ::close(dup);
        return false;
    }
    std::vector<std::string> subdirs;
    bool huge = false;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        struct stat st;
        if (n == "." || n == ".." || ::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) subdirs.push_back(n);
        if (S_ISREG(st.st_mode) && st.st_size > (off_t{1} << 30)) huge = true;
    }
    ::closedir(d);
    if (huge) return true;
    for (const std::string& n : subdirs) {
        int sub = ::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) continue;
        bool deep = unscannable(sub, levels - 1);
        ::close(sub);
        if (deep) return true;
    }
    return false;
}

bool unscannable(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    bool deep = unscannable(fd, 64);
    ::close(fd);
    return deep;
}

// Hashes what is written to it.
struct HashSink : ByteSink {
    void write(const void* buf, size_t n) override { hash.update(buf, n); }
    Sha256 hash;
};

}  // namespace

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string sha256_hex(const std::string& data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.final_digest();
}

Outcome run_limited(const std::vector<std::string>& args, const Stream& input,
                    const std::vector<std::string>& env) {
    TempDir io("strata-hostile-io");
    std::vector<std::string> argv = {STRATA_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> cargv = c_strings(argv);
    std::vector<char*> cenv = c_strings(envs);

    std::signal(SIGPIPE, SIG_IGN);
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::string out_path = (io.path() / "out").string();
    std::string err_path = (io.path() / "err").string();
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_t pid = ::fork();
    if (pid == 0) {
        // Only async-signal-safe calls between fork and exec.
        if (!kSanitized) {
            struct rlimit rl = {kMemoryLimit, kMemoryLimit};
            ::setrlimit(RLIMIT_AS, &rl);
        }
        ::dup2(pipefd[0], 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        ::execve(cargv[0], cargv.data(), cenv.data());
        ::_exit(127);
    }
    ::close(pipefd[0]);
    ::close(out);
    ::close(err);
    if (pid < 0) {
        ::close(pipefd[1]);
        throw std::runtime_error("fork failed");
    }
    write_stream(pipefd[1], input);
    ::close(pipefd[1]);

    int status = 0;
    struct rusage ru {};
    ::wait4(pid, &status, 0, &ru);
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.out = read_bytes(out_path);
    o.err = read_bytes(err_path);
    o.max_rss_kb = ru.ru_maxrss;
    return o;
}

HostileStore::HostileStore() : tmp_("strata-hostile") {
    // The canary: what no archive may touch.
    fs::path c = canary();
    fs::create_directories(c / "dir");
    fs::create_directories(c / "empty");
    std::ofstream(c / "file.txt") << "precious";
    std::ofstream(c / "dir/inner") << "inner";
    std::ofstream(c / "setuid-bin") << "#!/bin/sh\n";
    fs::permissions(c / "setuid-bin", static_cast<fs::perms>(04755));
    fs::create_symlink("file.txt", c / "link");

    std::string base = TarBuilder()
                           .dir("etc")
                           .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
                           .dir("dir")
                           .file("dir/a", "a")
                           .symlink("lib", c.string())
                           .symlink("victim", (c / "file.txt").string())
                           .symlink("up", "../../../..")
                           .finish();
    Outcome o = apply("base", base, false);
    if (o.exit_code != 0) throw std::runtime_error("hostile store: base layer: " + o.err);

    // state() computes diff digests in-process; they must be the CLI's.
    StoreState st = state();
    if (st.diffs.at("base") != sha256_hex(run({"diff", "base"}).out)) {
        throw std::runtime_error("hostile store: in-process diff digest differs from strata diff");
    }
}

Outcome HostileStore::run(const std::vector<std::string>& args, const std::string& input,
                          const std::vector<std::string>& global_args) {
    std::vector<std::string> all = {"--root", root().string()};
    all.insert(all.end(), global_args.begin(), global_args.end());
    all.insert(all.end(), args.begin(), args.end());
    return run_limited(all, Stream{.prefix = input});
}

Outcome HostileStore::apply(const std::string& id, const Stream& input, bool on_base,
                            const std::vector<std::string>& global_args) {
    std::vector<std::string> all = {"--root", root().string()};
    all.insert(all.end(), global_args.begin(), global_args.end());
    all.insert(all.end(), {"apply-diff", id});
    if (on_base) all.insert(all.end(), {"--parent", "base"});
    return run_limited(all, input);
}

Outcome HostileStore::apply(const std::string& id, const std::string& tar, bool on_base,
                            const std::vector<std::string>& global_args) {
    return apply(id, Stream{.prefix = tar}, on_base, global_args);
}

fs::path HostileStore::layer_dir(const std::string& id) {
    // A layer's directory never changes while it exists (ready layers are
    // immutable), so it is asked for once.
    auto it = native_ids_.find(id);
    if (it != native_ids_.end() && fs::exists(root() / "layers" / it->second)) {
        return root() / "layers" / it->second;
    }
    Outcome o = run({"show", id, "--json"});
    if (o.exit_code != 0) throw std::runtime_error("show " + id + ": " + o.err);
    std::string native = nlohmann::json::parse(o.out).at("native_id").get<std::string>();
    native_ids_[id] = native;
    return root() / "layers" / native;
}

std::vector<std::string> HostileStore::layer_ids() {
    return ids_in(run({"ls", "--json"}).out);
}

std::vector<std::string> HostileStore::ids_in(const std::string& ls_json) {
    std::vector<std::string> ids;
    for (const auto& row : nlohmann::json::parse(ls_json)) ids.push_back(row.at("id"));
    return ids;
}

StoreState HostileStore::state() {
    StoreState s;
    s.ls_json = run({"ls", "--json"}).out;
    s.layer_dirs = names_in(root() / "layers");
    // The digest `strata diff` would print, computed by the same function
    // in this process (one process per layer would dominate the run time).
    for (const std::string& id : ids_in(s.ls_json)) {
        HashSink sink;
        write_layer_tar(layer_dir(id), sink);
        s.diffs[id] = sink.hash.final_digest();
    }
    s.trees["canary"] = scan_tree(canary());
    for (const std::string& d : s.layer_dirs) {
        // A layer scan_tree cannot take is compared through its `diff`
        // digest alone.
        fs::path dir = root() / "layers" / d;
        s.trees["layers/" + d] = unscannable(dir) ? Manifest{} : scan_tree(dir);
    }
    s.temp_listing = names_in(dir());
    return s;
}

void expect_same(const StoreState& before, const StoreState& after, const std::string& added) {
    BOOST_TEST(before.temp_listing == after.temp_listing, "files appeared beside the store");
    for (const auto& [name, tree] : before.trees) {
        auto it = after.trees.find(name);
        BOOST_TEST_REQUIRE((it != after.trees.end()), name << " is gone");
        auto diffs = compare_manifests(tree, it->second);
        BOOST_TEST(diffs.empty(), name << " changed:\n" << format_differences(diffs));
    }
    for (const auto& [id, digest] : before.diffs) {
        BOOST_TEST(after.diffs.count(id) == 1u, "layer " << id << " is gone");
        if (after.diffs.count(id) == 1) BOOST_TEST(after.diffs.at(id) == digest, "diff of " << id);
    }
    if (added.empty()) {
        BOOST_TEST(before.ls_json == after.ls_json);
        BOOST_TEST(before.layer_dirs == after.layer_dirs);
        BOOST_TEST(before.diffs.size() == after.diffs.size());
    } else {
        BOOST_TEST(after.diffs.count(added) == 1u, "layer " << added << " was not made");
        BOOST_TEST(after.layer_dirs.size() == before.layer_dirs.size() + 1);
        BOOST_TEST(after.diffs.size() == before.diffs.size() + 1);
    }
}

void expect_refused(HostileStore& s, const std::string& id, const Stream& input,
                    const std::string& message, bool on_base, Match match,
                    const std::vector<std::string>& global_args) {
    StoreState before = s.state();
    Outcome o = s.apply(id, input, on_base, global_args);
    std::string prefix = "strata: error: apply-diff layer " + id + ": ";
    std::string got = last_line(o.err);
    BOOST_TEST(o.exit_code == 1, "exit " << o.exit_code << ", stderr: " << o.err);
    if (match == Match::Contains) {
        BOOST_TEST(got.rfind(prefix, 0) == 0u, got);
        BOOST_TEST(got.find(message) != std::string::npos, "got: " << got << "\nwant: " << message);
    } else {
        BOOST_TEST(got == prefix + message);
    }
    BOOST_TEST(o.err.find("strata: error:") == o.err.rfind("strata: error:"), "one error line");
    expect_same(before, s.state());
}

void expect_refused(HostileStore& s, const std::string& id, const std::string& tar,
                    const std::string& message, bool on_base) {
    expect_refused(s, id, Stream{.prefix = tar}, message, on_base);
}

fs::path expect_applied(HostileStore& s, const std::string& id, const Stream& input, bool on_base,
                        const std::vector<std::string>& global_args) {
    StoreState before = s.state();
    Outcome o = s.apply(id, input, on_base, global_args);
    BOOST_TEST_REQUIRE(o.exit_code == 0, "apply-diff " << id << " failed: " << o.err);
    expect_same(before, s.state(), id);
    return s.layer_dir(id);
}

fs::path expect_applied(HostileStore& s, const std::string& id, const std::string& tar,
                        bool on_base) {
    return expect_applied(s, id, Stream{.prefix = tar}, on_base);
}

}  // namespace strata::test
