#define BOOST_TEST_MODULE driver
#include <boost/test/unit_test.hpp>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <atomic>
#include <fstream>
#include <thread>

#include "engine/driver.h"
#include "engine/error.h"
#include "engine/fsck.h"
#include "tests/support/fixture.h"

namespace fs = std::filesystem;
using namespace strata;
using strata::test::TempDir;

namespace {

MountMode mode_from_env() {
    const char* m = std::getenv("STRATA_MOUNT_MODE");
    return parse_mount_mode(m ? m : "auto");
}

StoreOptions store_at(const fs::path& root) {
    StoreOptions o;
    o.root = root;
    o.mount_mode = mode_from_env();
    return o;
}

StoreOptions opts(const TempDir& dir) { return store_at(dir / "store"); }

// A ByteSource over a string.
class StringSource : public ByteSource {
public:
    explicit StringSource(std::string s) : s_(std::move(s)) {}
    size_t read(void* buf, size_t n) override {
        size_t k = std::min(n, s_.size() - pos_);
        std::memcpy(buf, s_.data() + pos_, k);
        pos_ += k;
        return k;
    }

private:
    std::string s_;
    size_t pos_ = 0;
};

// A tar made by GNU tar from a directory tree written by `setup` (shell).
std::string make_tar(const TempDir& dir, const std::string& name, const std::string& setup) {
    fs::path src = dir / (name + ".src");
    fs::create_directories(src);
    auto r = strata::test::run_shell("cd " + src.string() + " && " + setup + " && tar -cf ../" +
                                     name + ".tar --numeric-owner .");
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out);
    std::ifstream in(dir / (name + ".tar"), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::vector<std::string> layer_dirs(const TempDir& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir / "store" / "layers")) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(store_root_and_catalog_are_private) {
    TempDir dir;
    Driver d(opts(dir));
    auto mode = [](const fs::path& p) {
        return static_cast<int>(fs::status(p).permissions() & fs::perms::all);
    };
    BOOST_TEST(mode(dir / "store") == 0700);
    BOOST_TEST(mode(dir / "store" / "catalog.db") == 0600);
}

BOOST_AUTO_TEST_CASE(create_chain_and_remove_rules) {
    TempDir dir;
    Driver d(opts(dir));
    d.create("base", {});
    d.create("mid", CreateOptions{"base", false, {}});
    d.create("sb", CreateOptions{"mid", true, {{"size", "1000"}}});
    BOOST_TEST(d.exists("sb"));
    BOOST_TEST((d.catalog().chain("sb") == std::vector<std::string>{"mid", "base"}));
    BOOST_TEST(kind_name(d.catalog().layer("sb")->kind) == std::string("sandbox"));

    std::string err = error_of([&] { d.create("sb", {}); });
    BOOST_TEST(err.find("already exists") != std::string::npos, err);
    err = error_of([&] { d.create("x", CreateOptions{"nope", false, {}}); });
    BOOST_TEST(err.find("nope") != std::string::npos, err);
    BOOST_TEST(!d.catalog().layer("x").has_value());

    err = error_of([&] { d.remove("mid"); });
    BOOST_TEST(err.find("parent of sb") != std::string::npos, err);
    BOOST_TEST(d.exists("mid"));

    d.remove("sb");
    d.remove("mid");
    d.remove("base");
    BOOST_TEST(d.catalog().layers().empty());
    BOOST_TEST(layer_dirs(dir).empty());
}

BOOST_AUTO_TEST_CASE(bad_ids_are_refused_before_any_file_system_call) {
    TempDir dir;
    Driver d(opts(dir));
    const std::vector<std::string> bad = {"",           "..",      "a/b",   "a\\b",
                                          "x-removing", ".hidden", "-flag", std::string(129, 'a'),
                                          "ctl\x01"};
    for (const std::string& id : bad) {
        std::string err = error_of([&] { d.create(id, {}); });
        BOOST_TEST(err.find("invalid layer id") == 0u, err);
    }
    BOOST_TEST(layer_dirs(dir).empty());
    BOOST_TEST(d.catalog().layers().empty());
}

BOOST_AUTO_TEST_CASE(refcounts_survive_the_process_and_guard_remove) {
    TempDir dir;
    std::string path;
    {
        Driver d(opts(dir));
        d.create("base", {});
        d.create("sb", CreateOptions{"base", true, {}});
        path = d.get("sb", "");
        BOOST_TEST(d.get("sb", "") == path);
    }
    Driver d(opts(dir));
    BOOST_TEST(d.catalog().mount("sb")->refcount == 2);
    std::string err = error_of([&] { d.remove("sb"); });
    BOOST_TEST(err.find("mounted (refcount 2)") != std::string::npos, err);

    std::ofstream(fs::path(path) / "written") << "hello";
    d.put("sb");
    BOOST_TEST(d.catalog().mount("sb")->refcount == 1);
    BOOST_TEST(fs::exists(fs::path(path) / "written"));
    d.put("sb");
    BOOST_TEST(!d.catalog().mount("sb").has_value());
    err = error_of([&] { d.put("sb"); });
    BOOST_TEST(err.find("not mounted") != std::string::npos, err);

    // What was written through the mount belongs to the sandbox.
    auto changes = d.changes("sb", std::nullopt);
    BOOST_REQUIRE(changes.size() == 1u);
    BOOST_TEST(changes[0].path == "/written");
    BOOST_TEST(change_kind_name(changes[0].kind) == std::string("add"));
    BOOST_TEST(d.diff_size("sb", std::nullopt) == 5u);
}

BOOST_AUTO_TEST_CASE(failed_apply_leaves_nothing_behind) {
    TempDir dir;
    Driver d(opts(dir));
    std::string good = make_tar(dir, "good", "mkdir etc && echo hi > etc/hello");
    StringSource src(good);
    BOOST_TEST(d.apply_diff("base", std::nullopt, src) == 3u);
    auto before_layers = layer_dirs(dir);

    // The check runs after the data is written and before the commit.
    StringSource again(good);
    std::string err = error_of([&] {
        ApplyOptions refuse;
        refuse.check = [](const ApplyResult&) { throw Error("digest mismatch (test)"); };
        d.apply_diff("child", std::string("base"), again, refuse);
    });
    BOOST_TEST(err.find("apply-diff layer child") == 0u, err);
    BOOST_TEST(err.find("digest mismatch (test)") != std::string::npos, err);
    BOOST_TEST(!d.catalog().layer("child").has_value());
    BOOST_TEST(d.catalog().file_count("child") == 0);
    BOOST_TEST((layer_dirs(dir) == before_layers));

    // Garbage is refused the same way.
    StringSource junk(std::string(3000, 'x'));
    err = error_of([&] { d.apply_diff("junk", std::string("base"), junk); });
    BOOST_TEST(!err.empty());
    BOOST_TEST(!d.catalog().layer("junk").has_value());
    BOOST_TEST((layer_dirs(dir) == before_layers));
    BOOST_TEST(run_fsck(d, false).problems.empty());

    // An applied layer is immutable; an empty one made by create is not.
    StringSource more(good);
    err = error_of([&] { d.apply_diff("base", std::nullopt, more); });
    BOOST_TEST(err.find("already holds an applied diff") != std::string::npos, err);
    BOOST_TEST(d.catalog().layer("base")->size == 3u);
    d.create("empty", CreateOptions{"base", false, {}});
    StringSource into(good);
    BOOST_TEST(d.apply_diff("empty", std::string("base"), into) == 3u);
}

BOOST_AUTO_TEST_CASE(recovery_undoes_intents_and_collects_unknown_layers) {
    TempDir dir;
    { Driver d(opts(dir)); d.create("keep", {}); }
    {
        // Leave what a crash would: an intent row with its native layer,
        // a removing row, an unknown native directory, a stale mount row.
        Catalog c(dir / "store" / "catalog.db", Catalog::Mode::ReadWrite);
        for (auto [id, st] : {std::pair{"half", LayerState::Creating},
                              std::pair{"gone", LayerState::Removing}}) {
            LayerRow r;
            r.id = id;
            r.native_id = std::string("native-") + id;
            r.state = st;
            r.created = now_rfc3339();
            c.insert_layer(r);
            fs::create_directories(dir / "store" / "layers" / r.native_id);
        }
        fs::create_directories(dir / "store" / "layers" / "orphan" / "sub");
        c.upsert_mount(MountRow{"keep", 3, "/nowhere", "overlay", "an-earlier-boot", ""});
    }
    Driver d(opts(dir));
    BOOST_TEST(d.catalog().layers().size() == 1u);
    BOOST_TEST(d.exists("keep"));
    BOOST_TEST(!d.catalog().mount("keep").has_value());
    auto dirs = layer_dirs(dir);
    BOOST_TEST(dirs.size() == 1u);
    BOOST_TEST(dirs[0] == d.catalog().layer("keep")->native_id);
    auto repaired = d.recover();
    BOOST_TEST(repaired.size() == 4u);  // what the open repaired
    BOOST_TEST(d.recover().empty());    // idempotent
    BOOST_TEST(run_fsck(d, false).problems.empty());
}

BOOST_AUTO_TEST_CASE(unsafe_store_roots_are_refused) {
    TempDir dir;
    fs::path root = dir / "store";
    fs::create_directories(root);
    fs::permissions(root, fs::perms::all);  // 0777
    std::string err = error_of([&] { Driver d(store_at(root)); });
    BOOST_TEST(err.find("writable by others (mode 0777)") != std::string::npos, err);
    BOOST_TEST(!fs::exists(root / "catalog.db"));

    fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace);
    BOOST_REQUIRE(::chown(root.c_str(), 4242, 4242) == 0);
    err = error_of([&] { Driver d(store_at(root)); });
    BOOST_TEST(err.find("owned by uid 4242") != std::string::npos, err);
    BOOST_TEST(!fs::exists(root / "catalog.db"));

    BOOST_REQUIRE(::chown(root.c_str(), ::geteuid(), ::getegid()) == 0);
    { Driver d(store_at(root)); }
    fs::permissions(root / "catalog.db", fs::perms::others_write, fs::perm_options::add);
    err = error_of([&] { Driver d(store_at(root)); });
    BOOST_TEST(err.find("catalog " + (root / "catalog.db").string()) == 0u, err);

    fs::path link = dir / "link";
    fs::create_directory_symlink(root, link);
    err = error_of([&] { Driver d(store_at(link)); });
    BOOST_TEST(err.find("is a symlink") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(threads_with_their_own_drivers_serialise) {
    TempDir dir;
    { Driver d(opts(dir)); d.create("base", {}); }
    constexpr int kThreads = 4, kEach = 10;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            try {
                Driver d(opts(dir));
                for (int i = 0; i < kEach; ++i) {
                    std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
                    d.create(id, CreateOptions{"base", i % 2 == 1, {}});
                    if (i % 3 == 0) d.remove(id);
                }
            } catch (const std::exception& e) {
                BOOST_TEST_MESSAGE("thread " << t << ": " << e.what());
                ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    BOOST_TEST(failures.load() == 0);
    Driver d(opts(dir));
    // Per thread: 10 created, i = 0, 3, 6, 9 removed.
    BOOST_TEST(d.catalog().layers().size() == 1u + kThreads * 6u);
    BOOST_TEST(layer_dirs(dir).size() == 1u + kThreads * 6u);
    BOOST_TEST(run_fsck(d, false).problems.empty());
}

BOOST_AUTO_TEST_CASE(recovery_removes_scratch_left_by_a_crash) {
    TempDir dir;
    std::string native;
    {
        Driver d(opts(dir));
        d.create("sb", CreateOptions{std::nullopt, true, {}});
        native = d.catalog().layer("sb")->native_id;
    }
    // A copy that was killed while being built, and dirs of a vanished layer.
    fs::create_directories(dir / "store/mnt" / (native + ".tmp") / "usr");
    fs::create_directories(dir / "store/mnt/gone");
    fs::create_directories(dir / "store/work/gone/work");
    std::ofstream(dir / "store/work/gone.copy") << "";
    Driver d(opts(dir));
    auto repaired = d.recover();
    BOOST_TEST(repaired.size() == 4u);
    BOOST_TEST(!fs::exists(dir / "store/mnt" / (native + ".tmp")));
    BOOST_TEST(!fs::exists(dir / "store/mnt/gone"));
    BOOST_TEST(!fs::exists(dir / "store/work/gone"));
    BOOST_TEST(!fs::exists(dir / "store/work/gone.copy"));
    BOOST_TEST(d.exists("sb"));
    BOOST_TEST(fs::exists(d.posix().layer_dir(native)));
}

BOOST_AUTO_TEST_CASE(sizes_parse_with_units) {
    BOOST_TEST(parse_size("4096") == 4096u);
    BOOST_TEST(parse_size("1G") == (uint64_t{1} << 30));
    BOOST_TEST(parse_size("512MiB") == (uint64_t{512} << 20));
    BOOST_TEST(parse_size("2gb") == (uint64_t{2} << 30));
    for (std::string bad : {"", "G", "1X", "1GG", "-1", "99999999999P"}) {
        std::string err = error_of([&] { parse_size(bad); });
        BOOST_TEST(err.find("size '" + bad + "'") == 0u, err);
    }
}
