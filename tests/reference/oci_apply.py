#!/usr/bin/env python3
"""An independent reference applier of image layers, written from the OCI
image-spec layer rules (layer.md), used to say what a strata sandbox on an
imported image must contain.

It reads an image archive -- docker-archive (manifest.json), legacy docker
save (a `json` and `layer.tar` per layer, order from the parent fields), OCI
archive or OCI layout directory (index.json) -- applies its layers in order
to an in-memory tree and prints the tree as a manifest (tree_manifest.py
defines the format). The rules it applies, per layer:

  * entries are applied in tar order; an entry replaces whatever the tree
    holds at its path, except that a directory over a directory only takes
    the new attributes and keeps the children; anything else replacing a
    directory drops the directory's whole subtree
  * missing parent directories are made implicitly (0755, root:root); a
    non-directory in the way of a parent is replaced by such a directory
  * `DIR/.wh.NAME` removes NAME (and its subtree) as the lower layers left
    it; `DIR/.wh..wh..opq` removes every child of DIR the lower layers left.
    Neither touches entries of the same layer, wherever in the tar the
    marker appears: all markers of a layer are applied to the lower tree
    first, then the layer's other entries. Markers create no directories.
  * a hard link names a path already in the tree (this layer or a lower
    one) and shares its inode: content, mode, owner and xattrs come from
    the target, not from the link's own header
  * xattrs come from PAX `SCHILY.xattr.NAME` records (and libarchive's
    `LIBARCHIVE.xattr.NAME` base64 records); ownership is the numeric
    uid/gid (user and group names are ignored, as container appliers do)
  * names and link names resolve inside the root without following
    symlinks; `..` in a name is refused

Usage:
  oci_apply.py manifest ARCHIVE            the manifest of the applied image
  oci_apply.py layers ARCHIVE              the layers, base first, as JSON
  oci_apply.py digests ARCHIVE             the layers with the sha256 of their
        uncompressed content, to check against their diff_ids
  oci_apply.py locate ARCHIVE [--layer N]  where a byte of regular-file
        content of layer N (default: the top) sits in the archive file, for
        tampering tests; only for archive files with uncompressed layers
Standard library only; zstd layers are decompressed with `zstd -dc`.
"""

import base64
import gzip
import hashlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tree_manifest  # noqa: E402

WHITEOUT = b".wh."
OPAQUE = b".wh..wh..opq"


class ReferenceError(Exception):
    pass


# ---------------------------------------------------------------- archives

class TarArchive:
    """An image archive file; member names are normalized ("./x" -> "x")."""

    def __init__(self, path):
        self.path = path
        self.tar = tarfile.open(path, "r:")
        self.members = {}
        for m in self.tar.getmembers():
            self.members[posixpath.normpath(m.name).lstrip("/")] = m

    def resolve(self, name):
        name = posixpath.normpath(name).lstrip("/")
        for _ in range(16):
            m = self.members.get(name)
            if m is None:
                return None
            if m.issym():
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
            elif m.islnk():
                name = posixpath.normpath(m.linkname).lstrip("/")
            else:
                return m
        raise ReferenceError("symlink loop at %s in %s" % (name, self.path))

    def has(self, name):
        return self.resolve(name) is not None

    def open(self, name):
        m = self.resolve(name)
        if m is None or not m.isreg():
            raise ReferenceError("%s: no file %s in the archive" % (self.path, name))
        return self.tar.extractfile(m)

    def names(self):
        return list(self.members)

    def data_offset(self, name):
        return self.resolve(name).offset_data


class DirArchive:
    """An OCI layout (or unpacked docker-archive) directory."""

    def __init__(self, path):
        self.path = path

    def has(self, name):
        return os.path.isfile(os.path.join(self.path, name))

    def open(self, name):
        return open(os.path.join(self.path, name), "rb")

    def names(self):
        out = []
        for dirpath, _, files in os.walk(self.path):
            rel = os.path.relpath(dirpath, self.path)
            out += [f if rel == "." else rel + "/" + f for f in files]
            if rel != ".":
                out.append(rel)
        return out

    def data_offset(self, name):
        return 0


def open_archive(path):
    return DirArchive(path) if os.path.isdir(path) else TarArchive(path)


def read_json(archive, name):
    with archive.open(name) as f:
        return json.load(f)


def blob_path(digest):
    alg, _, hexpart = digest.partition(":")
    return "blobs/%s/%s" % (alg, hexpart)


def diff_ids_of(archive, config_name):
    if not config_name or not archive.has(config_name):
        return None
    return read_json(archive, config_name).get("rootfs", {}).get("diff_ids")


def docker_layers(archive):
    entry = read_json(archive, "manifest.json")[0]
    ids = diff_ids_of(archive, entry.get("Config"))
    return [{"blob": name, "diff_id": ids[i] if ids and i < len(ids) else None}
            for i, name in enumerate(entry["Layers"])]


def oci_layers(archive, descriptor):
    doc = read_json(archive, blob_path(descriptor["digest"]))
    if doc.get("manifests"):
        return oci_layers(archive, doc["manifests"][0])
    ids = diff_ids_of(archive, blob_path(doc["config"]["digest"]))
    return [{"blob": blob_path(d["digest"]), "diff_id": ids[i] if ids and i < len(ids) else None,
             "media_type": d.get("mediaType")} for i, d in enumerate(doc["layers"])]


def legacy_layers(archive):
    parents = {}
    for name in archive.names():
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "json":
            parents[parts[0]] = read_json(archive, name).get("parent")
    if not parents:
        raise ReferenceError("not an image archive: no manifest.json, index.json or layer json")
    top = None
    if archive.has("repositories"):
        for tags in read_json(archive, "repositories").values():
            top = next(iter(tags.values()), None)
            break
    if top is None:
        children = set(p for p in parents.values() if p)
        tops = [i for i in parents if i not in children]
        if len(tops) != 1:
            raise ReferenceError("legacy archive: cannot tell the top layer among %s" % tops)
        top = tops[0]
    chain = []
    while top:
        chain.append(top)
        top = parents.get(top)
    return [{"blob": i + "/layer.tar", "diff_id": None} for i in reversed(chain)]


def image_layers(archive):
    """Returns the image's layers, base first: [{blob, diff_id}]."""
    if archive.has("manifest.json"):
        return docker_layers(archive)
    if archive.has("index.json"):
        index = read_json(archive, "index.json")
        if index.get("manifests"):
            return oci_layers(archive, index["manifests"][0])
    return legacy_layers(archive)


def open_layer_tar(archive, blob, scratch):
    """Returns a seekable file object of the uncompressed layer, or None for
    an empty blob."""
    raw = archive.open(blob)
    head = raw.read(4)
    raw.seek(0)
    if not head:
        return None
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)
    if head == b"\x28\xb5\x2f\xfd":
        out_path = os.path.join(scratch, "layer.tar")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(["zstd", "-dc"], stdin=subprocess.PIPE, stdout=out)
            shutil.copyfileobj(raw, proc.stdin)
            proc.stdin.close()
            if proc.wait() != 0:
                raise ReferenceError("zstd -dc failed on %s" % blob)
        return open(out_path, "rb")
    return raw


# -------------------------------------------------------------- tree model

class Inode:
    """What a name points to; hard links share one Inode."""

    def __init__(self, kind, mode, uid, gid, xattrs, size=None, sha256=None, target=None,
                 rdev=None):
        self.kind, self.mode, self.uid, self.gid = kind, mode, uid, gid
        self.xattrs, self.size, self.sha256 = xattrs, size, sha256
        self.target, self.rdev = target, rdev


class Node:
    def __init__(self, inode):
        self.inode = inode
        self.children = {} if inode.kind == "dir" else None


def implicit_dir():
    return Node(Inode("dir", 0o755, 0, 0, {}))


def split_name(name):
    """Tar name (str, surrogate-escaped) -> list of byte components."""
    raw = name.encode("utf-8", "surrogateescape")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise ReferenceError("entry %r has a '..' component; the reference refuses it" % name)
    return parts


def lookup(root, parts):
    node = root
    for p in parts:
        if node.children is None:
            return None
        node = node.children.get(p)
        if node is None:
            return None
    return node


def parent_dir(root, parts):
    """The directory node that holds parts[-1], making missing ones."""
    node = root
    for p in parts[:-1]:
        child = node.children.get(p)
        if child is None or child.children is None:
            child = implicit_dir()
            node.children[p] = child
        node = child
    return node


def entry_xattrs(member):
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4)).hex()
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape").hex()
    return out


def member_inode(tf, member):
    """The Inode a non-link tar entry describes (reads a file's content)."""
    mode, xattrs = member.mode & 0o7777, entry_xattrs(member)
    if member.isreg():
        digest = hashlib.sha256()
        size = 0
        f = tf.extractfile(member)
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            size += len(block)
            digest.update(block)
        return Inode("file", mode, member.uid, member.gid, xattrs, size, digest.hexdigest())
    if member.isdir():
        return Inode("dir", mode, member.uid, member.gid, xattrs)
    if member.issym():
        target = tree_manifest.show_name(member.linkname.encode("utf-8", "surrogateescape"))
        return Inode("symlink", mode, member.uid, member.gid, xattrs, target=target)
    if member.ischr() or member.isblk():
        kind = "char" if member.ischr() else "block"
        return Inode(kind, mode, member.uid, member.gid, xattrs,
                     rdev=(member.devmajor, member.devminor))
    if member.isfifo():
        return Inode("fifo", mode, member.uid, member.gid, xattrs)
    raise ReferenceError("entry %s has tar type %r the reference does not know"
                         % (member.name, member.type))


def place(root, parts, inode, where):
    """Puts inode at parts, following the replacement rules above."""
    if not parts:
        if inode.kind != "dir":
            raise ReferenceError("%s: the root replaced by a %s" % (where, inode.kind))
        root.inode = inode
        return
    parent = parent_dir(root, parts)
    old = parent.children.get(parts[-1])
    if old is not None and old.children is not None and inode.kind == "dir":
        old.inode = inode
        return
    parent.children[parts[-1]] = Node(inode)


def apply_layer(root, tf, where):
    """Applies one layer (an open tarfile) to the tree at root."""
    markers, entries = [], []
    for member in tf:
        parts = split_name(member.name)
        base = parts[-1] if parts else b""
        if base == OPAQUE or base.startswith(WHITEOUT):
            markers.append((parts, base))
        elif member.islnk():
            entries.append((parts, None, split_name(member.linkname)))
        else:
            entries.append((parts, member_inode(tf, member), None))

    for parts, base in markers:
        holder = lookup(root, parts[:-1])
        if holder is None or holder.children is None:
            continue
        if base == OPAQUE:
            holder.children.clear()
        else:
            holder.children.pop(base[len(WHITEOUT):], None)

    for parts, inode, link in entries:
        if link is not None:
            target = lookup(root, link)
            if target is None or target.children is not None:
                raise ReferenceError("%s: hard link %s to missing or directory %s"
                                     % (where, b"/".join(parts), b"/".join(link)))
            inode = target.inode
        place(root, parts, inode, where)


def apply_image(path):
    """Returns the root Node of the image archive at path, layers applied."""
    archive = open_archive(path)
    root = implicit_dir()
    for layer in image_layers(archive):
        with tempfile.TemporaryDirectory(prefix="oci-apply-") as scratch:
            f = open_layer_tar(archive, layer["blob"], scratch)
            if f is None:
                continue
            with tarfile.open(fileobj=f, mode="r:", encoding="utf-8",
                              errors="surrogateescape") as tf:
                apply_layer(root, tf, layer["blob"])
    return root


def manifest_of(root):
    """The manifest (tree_manifest format) of the tree at root."""
    entries, inode_of = [], {}
    pending = [(root, "")]
    while pending:
        node, shown = pending.pop()
        for name, child in node.children.items():
            path = shown + "/" + tree_manifest.show_name(name)
            i = child.inode
            entries.append(tree_manifest.make_entry(path, i.kind, i.mode, i.uid, i.gid, i.size,
                                                    i.sha256, i.target, i.rdev, i.xattrs))
            if i.kind == "file":
                inode_of[path] = id(i)
            if child.children is not None:
                pending.append((child, path))
    return tree_manifest.finish(entries, inode_of)


# ------------------------------------------------------------------ digests

def digests(path):
    """The image's layers, each with the sha256 of its uncompressed tar."""
    archive = open_archive(path)
    out = []
    for layer in image_layers(archive):
        with tempfile.TemporaryDirectory(prefix="oci-apply-") as scratch:
            f = open_layer_tar(archive, layer["blob"], scratch)
            digest = hashlib.sha256()
            while f is not None:
                block = f.read(1 << 20)
                if not block:
                    break
                digest.update(block)
            out.append(dict(layer, content_digest="sha256:" + digest.hexdigest()))
    return out


# ------------------------------------------------------------------- locate

def locate(path, layer_index):
    """Where one byte of regular-file content of a layer sits in the file."""
    archive = TarArchive(path)
    layers = image_layers(archive)
    layer = layers[layer_index]
    outer = archive.data_offset(layer["blob"])
    with tarfile.open(fileobj=archive.open(layer["blob"]), mode="r:") as tf:
        for member in tf:
            if member.isreg() and member.size > 0 and not member.sparse:
                return {"layer": layer_index % len(layers), "blob": layer["blob"],
                        "diff_id": layer["diff_id"], "member": member.name,
                        "offset": outer + member.offset_data + member.size // 2}
    raise ReferenceError("layer %s has no regular file with content" % layer["blob"])


def main(argv):
    if len(argv) < 3 or argv[1] not in ("manifest", "layers", "digests", "locate"):
        sys.stderr.write(__doc__)
        return 2
    try:
        if argv[1] == "manifest":
            tree_manifest.dump(manifest_of(apply_image(argv[2])))
        elif argv[1] == "layers":
            print(json.dumps(image_layers(open_archive(argv[2])), indent=1))
        elif argv[1] == "digests":
            print(json.dumps(digests(argv[2]), indent=1))
        else:
            index = int(argv[argv.index("--layer") + 1]) if "--layer" in argv else -1
            print(json.dumps(locate(argv[2], index)))
    except (ReferenceError, tarfile.TarError, OSError, KeyError, ValueError) as e:
        sys.stderr.write("oci_apply: %s: %s\n" % (argv[2], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
