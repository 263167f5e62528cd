#!/usr/bin/env python3
"""Tree manifests: one canonical description of a file tree, for comparing
what an image should contain with what a mounted strata sandbox contains.

A manifest is a JSON list of entries sorted by path, one per name below the
root (the root itself is left out: its attributes belong to the mount point
or sandbox directory, not to any layer's content):

  path       "/etc/passwd"; names that are not valid UTF-8 are written with
             \\xNN escapes for the offending bytes (and a literal backslash
             as \\\\), the same way in every mode
  type       file | dir | symlink | char | block | fifo | socket
  mode       permission bits incl. setuid/setgid/sticky, "%04o"; null for
             symlinks (their mode has no meaning on Linux)
  uid, gid   numeric owner
  size       content bytes of a regular file, else null (a directory's
             st_size depends on the file system)
  sha256     hex digest of a regular file's content, else null
  target     a symlink's target, else null
  rdev       [major, minor] of a char or block device, else null
  xattrs     {name: hex value}; trusted.overlay.* is left out (overlayfs's
             own bookkeeping, never image content)
  link_group sorted list of every path sharing this regular file's inode,
             when there is more than one; else null

Modification times are deliberately not part of a manifest: the OCI layer
rules leave directory mtimes implementation-defined (a directory's mtime
changes whenever an entry below it is created or removed, and overlayfs
copy-up rewrites it), so comparing them would test the applier's order of
work rather than the image's content.

Run as a script, it prints the manifest of a real directory:

  tree_manifest.py DIR [--exclude-xattr PREFIX]...

LIMITATION: POSIX ACLs, file capabilities held outside xattrs and inode
flags (chattr) are not described; an `acl` field read from the
system.posix_acl_* xattrs and SCHILY.acl.* records would lift it.
"""

import hashlib
import json
import os
import stat
import sys

DEFAULT_XATTR_EXCLUDES = ("trusted.overlay.",)


def show_name(raw):
    """Returns the display form of a name given as bytes (see above)."""
    try:
        text = raw.decode("utf-8")
        return text.replace("\\", "\\\\")
    except UnicodeDecodeError:
        pass
    out = []
    i = 0
    while i < len(raw):
        # Decode the longest valid prefix, escape one bad byte, go on.
        for j in range(min(len(raw), i + 4), i, -1):
            try:
                out.append(raw[i:j].decode("utf-8").replace("\\", "\\\\"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\\x%02x" % raw[i])
            i += 1
    return "".join(out)


def make_entry(path, kind, mode=None, uid=0, gid=0, size=None, sha256=None, target=None,
               rdev=None, xattrs=None):
    """Returns one manifest entry (link_group is filled in by finish())."""
    return {
        "path": path,
        "type": kind,
        "mode": None if kind == "symlink" or mode is None else "%04o" % (mode & 0o7777),
        "uid": uid,
        "gid": gid,
        "size": size if kind == "file" else None,
        "sha256": sha256 if kind == "file" else None,
        "target": target if kind == "symlink" else None,
        "rdev": list(rdev) if kind in ("char", "block") else None,
        "xattrs": dict(sorted((xattrs or {}).items())),
        "link_group": None,
    }


def finish(entries, inode_of):
    """Fills link_group from inode_of (path -> inode key, regular files
    only) and returns the entries sorted by path."""
    groups = {}
    for path, key in inode_of.items():
        groups.setdefault(key, []).append(path)
    for entry in entries:
        key = inode_of.get(entry["path"])
        if key is not None and len(groups[key]) > 1:
            entry["link_group"] = sorted(groups[key])
    return sorted(entries, key=lambda e: e["path"])


def dump(entries, out=None):
    """Writes a manifest as UTF-8 JSON, one entry per line."""
    out = out or sys.stdout.buffer
    out.write(b"[\n")
    for i, entry in enumerate(entries):
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False)
        out.write(line.encode("utf-8") + (b",\n" if i + 1 < len(entries) else b"\n"))
    out.write(b"]\n")
    out.flush()


def hash_file(path):
    """Returns (size, sha256 hex) of the file at path (bytes), not following
    a final symlink."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def read_xattrs(path, excludes):
    """Returns {name: hex value} of path (bytes), not following symlinks."""
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if any(name.startswith(p) for p in excludes):
            continue
        out[name] = os.getxattr(path, name, follow_symlinks=False).hex()
    return out


def describe(full, shown, st, excludes):
    """Returns the manifest entry of one lstat'ed name."""
    fmt = stat.S_IFMT(st.st_mode)
    kinds = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
             stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
             stat.S_IFSOCK: "socket"}
    kind = kinds[fmt]
    size = sha = target = None
    if kind == "file":
        size, sha = hash_file(full)
    if kind == "symlink":
        target = show_name(os.readlink(full))
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return make_entry(shown, kind, st.st_mode, st.st_uid, st.st_gid, size, sha, target, rdev,
                      read_xattrs(full, excludes))


def walk(root, excludes=DEFAULT_XATTR_EXCLUDES):
    """Returns the manifest of the real directory root (str or bytes)."""
    root = os.fsencode(root)
    entries = []
    inode_of = {}
    pending = [(root, "")]
    while pending:
        dir_full, dir_shown = pending.pop()
        with os.scandir(dir_full) as it:
            names = sorted(e.name for e in it)
        for name in names:
            full = os.path.join(dir_full, name)
            shown = dir_shown + "/" + show_name(name)
            st = os.lstat(full)
            entries.append(describe(full, shown, st, excludes))
            if stat.S_ISREG(st.st_mode):
                inode_of[shown] = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                pending.append((full, shown))
    return finish(entries, inode_of)


def main(argv):
    args = list(argv[1:])
    excludes = list(DEFAULT_XATTR_EXCLUDES)
    while "--exclude-xattr" in args:
        i = args.index("--exclude-xattr")
        excludes.append(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.stderr.write("usage: tree_manifest.py DIR [--exclude-xattr PREFIX]...\n")
        return 2
    dump(walk(args[0], tuple(excludes)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
