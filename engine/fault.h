// Fault injection for tests, through the real binary. Inert unless the
// environment switches it on:
//
//   STRATA_CRASH_AT=<point>    the process kills itself with SIGKILL (as
//                              `kill -9` would) when it reaches the named
//                              crash point, e.g. `create.after_intent`.
//   STRATA_FAIL_CALL=<call>    the named backend call (e.g. `create_layer`,
//                              `write_layer`, `prepare`) throws an injected
//                              error instead of running; `<call>#N` fails
//                              only its N-th invocation in the process.
//
// docs/crash-consistency.md lists every crash point and backend call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace strata {

// Marks a named crash point. Kills the process if STRATA_CRASH_AT names it.
void crash_point(const char* name);

// Every crash point the engine marks, for tests and docs.
const std::vector<std::string>& crash_points();

// Wraps `inner` so that STRATA_FAIL_CALL can fail any call; returns `inner`
// itself when fault injection is off.
std::unique_ptr<Backend> with_fault_injection(std::unique_ptr<Backend> inner);

}  // namespace strata
