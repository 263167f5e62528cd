// Raising a libarchive failure as strata::Error.
//
// Exceptions never cross libarchive: a callback that fails saves its
// exception in `pending` and tells libarchive the call failed. Once
// libarchive returns, the saved exception (if any) is raised again with
// context; otherwise libarchive's own message is.
#pragma once

#include <archive.h>

#include <exception>
#include <string>

#include "engine/error.h"

namespace strata {

[[noreturn]] inline void throw_archive_error(struct archive* a, std::exception_ptr& pending,
                                             const std::string& context) {
    if (pending) {
        std::exception_ptr p = pending;
        pending = nullptr;
        try {
            std::rethrow_exception(p);
        } catch (const std::exception& e) {
            throw Error(context + ": " + e.what());
        }
    }
    const char* msg = archive_error_string(a);
    throw Error(context + ": " + (msg != nullptr ? msg : "unknown libarchive error"));
}

}  // namespace strata
