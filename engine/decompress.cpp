#include "engine/decompress.h"

#include <archive_entry.h>

#include "engine/error.h"

namespace strata {

DecompressingSource::DecompressingSource(ByteSource& inner, std::string name)
    : inner_(inner), name_(std::move(name)) {
    a_ = archive_read_new();
    archive_read_support_filter_all(a_);
    archive_read_support_format_raw(a_);
    archive_read_support_format_empty(a_);
}

DecompressingSource::~DecompressingSource() { archive_read_free(a_); }

la_ssize_t DecompressingSource::on_read(struct archive* a, void* self, const void** buf) {
    auto* me = static_cast<DecompressingSource*>(self);
    try {
        *buf = me->in_buf_;
        return static_cast<la_ssize_t>(me->inner_.read(me->in_buf_, sizeof me->in_buf_));
    } catch (const std::exception& e) {
        archive_set_error(a, EIO, "%s", e.what());
        return -1;
    }
}

size_t DecompressingSource::read(void* buf, size_t n) {
    if (!started_) {
        started_ = true;
        if (archive_read_open(a_, this, nullptr, &DecompressingSource::on_read, nullptr) !=
            ARCHIVE_OK) {
            throw Error(name_ + ": " + archive_error_string(a_));
        }
        struct archive_entry* entry = nullptr;
        int rc = archive_read_next_header(a_, &entry);
        if (rc == ARCHIVE_EOF) {
            empty_ = true;
        } else if (rc != ARCHIVE_OK) {
            throw Error(name_ + ": " + archive_error_string(a_));
        }
    }
    if (empty_) return 0;
    la_ssize_t got = archive_read_data(a_, buf, n);
    if (got < 0) throw Error(name_ + ": " + archive_error_string(a_));
    return static_cast<size_t>(got);
}

}  // namespace strata
