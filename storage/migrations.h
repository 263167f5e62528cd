// The schema migrations compiled into the library (from schema/NNN_*.sql).
#pragma once

#include <string>
#include <vector>

namespace strata {

struct Migration {
    int version;       // NNN of the file name; the catalog's user_version after it
    const char* name;  // file name, for messages
    const char* sql;
};

// All migrations, ascending by version, contiguous from 1.
const std::vector<Migration>& schema_migrations();

}  // namespace strata
