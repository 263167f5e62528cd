// Errors raised by the engine and the catalog.
//
// strata reports failures as exceptions of one type, strata::Error, whose
// message is a complete one-line sentence naming what failed: the layer, the
// step, the entry or the path. The command line prints it after
// "strata: error: " and exits non-zero; nothing else is added to it.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace strata {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A failure the caller can expect and test for: the thing asked for is not
// there (a layer id, a file, a native layer).
class NotFound : public Error {
public:
    explicit NotFound(const std::string& message) : Error(message) {}
};

// Raises Error with `what` followed by the text of errno (or `err`).
[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw Error(what + ": " + std::strerror(err));
}

}  // namespace strata
