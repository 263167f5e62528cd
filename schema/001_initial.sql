-- strata catalog, schema version 1.
--
-- Layer states: creating -> ready, applying -> ready, ready -> removing.
-- A row in creating, applying or removing is an intent: recovery finishes or
-- undoes it (see docs/crash-consistency.md). Only ready layers are visible to
-- the driver verbs.

CREATE TABLE layers (
    id           TEXT PRIMARY KEY,
    native_id    TEXT NOT NULL UNIQUE,
    parent       TEXT REFERENCES layers(id),
    kind         TEXT NOT NULL CHECK (kind IN ('layer', 'sandbox')),
    state        TEXT NOT NULL CHECK (state IN ('creating', 'applying', 'ready', 'removing')),
    size         INTEGER NOT NULL DEFAULT 0,
    diff_digest  TEXT,
    created      TEXT NOT NULL,
    mount_label  TEXT,
    storage_opts TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX layers_parent ON layers(parent);

-- chain(L) = [parent(L)] + chain(parent(L)); depth 0 is the parent.
CREATE TABLE chains (
    layer    TEXT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    depth    INTEGER NOT NULL CHECK (depth >= 0),
    ancestor TEXT NOT NULL REFERENCES layers(id),
    PRIMARY KEY (layer, depth)
);
CREATE INDEX chains_ancestor ON chains(ancestor);

CREATE TABLE mounts (
    layer    TEXT PRIMARY KEY REFERENCES layers(id) ON DELETE CASCADE,
    refcount INTEGER NOT NULL CHECK (refcount >= 0),
    path     TEXT NOT NULL,
    mode     TEXT NOT NULL CHECK (mode IN ('overlay', 'copy')),
    boot_id  TEXT NOT NULL,
    updated  TEXT NOT NULL
);

-- Files that native processing mutates after import, kept as imported.
CREATE TABLE backups (
    layer  TEXT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    digest TEXT NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (layer, name)
);

-- One row per tar entry of a layer, in stream order. Paths are bytes.
CREATE TABLE files (
    layer       TEXT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    path        BLOB NOT NULL,
    type        TEXT NOT NULL,
    mode        INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    gid         INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    mtime       INTEGER NOT NULL,
    link_target BLOB,
    dev_major   INTEGER NOT NULL DEFAULT 0,
    dev_minor   INTEGER NOT NULL DEFAULT 0,
    xattrs      TEXT,
    PRIMARY KEY (layer, seq)
);
CREATE INDEX files_path ON files(path);

CREATE TABLE images (
    name          TEXT PRIMARY KEY,
    top_layer     TEXT NOT NULL REFERENCES layers(id),
    config        TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    format        TEXT NOT NULL,
    created       TEXT NOT NULL
);

CREATE TABLE oplog (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    op     TEXT NOT NULL,
    layer  TEXT,
    result TEXT NOT NULL,
    detail TEXT
);
