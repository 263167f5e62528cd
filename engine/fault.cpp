#include "engine/fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "engine/error.h"

namespace strata {

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// Forwards every call to the wrapped backend, failing the one named by
// STRATA_FAIL_CALL.
class FaultBackend : public Backend {
public:
    FaultBackend(std::unique_ptr<Backend> inner, std::string spec) : inner_(std::move(inner)) {
        auto hash = spec.find('#');
        call_ = spec.substr(0, hash);
        if (hash != std::string::npos) nth_ = std::stoi(spec.substr(hash + 1));
    }

    std::string name() const override { return inner_->name(); }
    std::vector<std::pair<std::string, std::string>> status() override {
        return inner_->status();
    }
    void create_layer(const std::string& id, const Chain& p) override {
        hit("create_layer", id);
        inner_->create_layer(id, p);
    }
    void create_sandbox(const std::string& id, const Chain& p) override {
        hit("create_sandbox", id);
        inner_->create_sandbox(id, p);
    }
    void expand_sandbox(const std::string& id, uint64_t bytes) override {
        hit("expand_sandbox", id);
        inner_->expand_sandbox(id, bytes);
    }
    void destroy(const std::string& id) override {
        hit("destroy", id);
        inner_->destroy(id);
    }
    void rename_for_removal(const std::string& id) override {
        hit("rename_for_removal", id);
        inner_->rename_for_removal(id);
    }
    void activate(const std::string& id) override {
        hit("activate", id);
        inner_->activate(id);
    }
    void deactivate(const std::string& id) override {
        hit("deactivate", id);
        inner_->deactivate(id);
    }
    std::string prepare(const std::string& id, const Chain& p,
                        const PrepareOptions& o) override {
        hit("prepare", id);
        return inner_->prepare(id, p, o);
    }
    void unprepare(const std::string& id, const Chain& p, bool writable) override {
        hit("unprepare", id);
        inner_->unprepare(id, p, writable);
    }
    bool is_prepared(const std::string& id) override { return inner_->is_prepared(id); }
    std::string mount_path(const std::string& id) override { return inner_->mount_path(id); }
    bool exists(const std::string& id) override { return inner_->exists(id); }
    std::vector<std::string> list() override { return inner_->list(); }
    std::vector<std::string> collect_leftovers() override { return inner_->collect_leftovers(); }
    ApplyResult write_layer(const std::string& id, const Chain& p, ByteSource& tar,
                            const std::function<void(const FileRecord&)>& on_entry) override {
        hit("write_layer", id);
        return inner_->write_layer(id, p, tar, on_entry);
    }
    void read_layer(const std::string& id, ByteSink& out) override {
        hit("read_layer", id);
        inner_->read_layer(id, out);
    }
    std::vector<Change> changes(const std::string& id, const Chain& p) override {
        hit("changes", id);
        return inner_->changes(id, p);
    }
    uint64_t size(const std::string& id) override { return inner_->size(id); }
    void sync(const std::string& id) override {
        hit("sync", id);
        inner_->sync(id);
    }

private:
    void hit(const char* call, const std::string& id) {
        if (call_ != call) return;
        ++seen_;
        if (nth_ == 0 || seen_ == nth_) {
            throw Error(std::string("injected failure in ") + call + " of native layer " + id);
        }
    }

    std::unique_ptr<Backend> inner_;
    std::string call_;
    int nth_ = 0;
    int seen_ = 0;
};

}  // namespace

void crash_point(const char* name) {
    static const std::string target = env("STRATA_CRASH_AT");
    if (target.empty() || target != name) return;
    ::kill(::getpid(), SIGKILL);
    ::_exit(137);  // not reached
}

const std::vector<std::string>& crash_points() {
    static const std::vector<std::string> all = {
        "create.after_intent",   "create.after_native",   "create.after_commit",
        "apply.after_intent",    "apply.after_data",      "apply.before_commit",
        "apply.after_commit",    "remove.after_intent",   "remove.after_rename",
        "remove.after_destroy",  "get.after_prepare",     "get.after_commit",
        "put.after_commit",      "put.after_unprepare",   "import.after_layer",
        "cleanup.after_release", "recover.after_repair",
    };
    return all;
}

std::unique_ptr<Backend> with_fault_injection(std::unique_ptr<Backend> inner) {
    std::string spec = env("STRATA_FAIL_CALL");
    if (spec.empty()) return inner;
    return std::make_unique<FaultBackend>(std::move(inner), spec);
}

}  // namespace strata
