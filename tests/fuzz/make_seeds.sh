#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/ (docs/fuzzing.md).
# Run by hand after changing a seed recipe; CI never runs it. Needs GNU tar,
# bsdtar, gzip, zstd and sha256sum. Output is deterministic (fixed names, owners,
# modes and times), so a rerun changes nothing unless a recipe changed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
corpus="$here/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 022

gtar() {
    tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -b1 "$@"
}
pax() {
    gtar --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$@"
}

# Regression seeds (regress-*, inputs of fixed findings) are kept.
mkdir -p "$corpus"
find "$corpus" -type f ! -name 'regress-*' -delete
mkdir -p "$corpus"/{layer_tar,oci_index,oci_manifest,oci_config,docker_manifest,image_tar}
L="$corpus/layer_tar"

# --- layer tars -------------------------------------------------------------

# A small root file system: directories, files, a symlink, a hard link, a
# setuid binary, a fifo and a device node.
s="$work/basic"
mkdir -p "$s"/{etc,bin,usr/lib,dev}
printf '127.0.0.1 localhost\n' >"$s/etc/hosts"
printf '#!/bin/sh\necho busybox\n' >"$s/bin/busybox"
chmod 04755 "$s/bin/busybox"
ln -s busybox "$s/bin/sh"
ln "$s/bin/busybox" "$s/bin/ls"
printf 'libc\n' >"$s/usr/lib/libc.so.6"
mkfifo "$s/dev/initctl"
mknod "$s/dev/null" c 1 3
gtar --format=gnu -cf "$L/basic-gnu.tar" -C "$s" .
pax -cf "$L/basic-pax.tar" -C "$s" etc bin
gzip -9n <"$L/basic-gnu.tar" >"$L/basic-gnu.tar.gz"
zstd -q -19 <"$L/basic-gnu.tar" >"$L/basic-gnu.tar.zst"

# OCI whiteouts and opaque markers, naming what the lower layer of
# fuzz_layer_tar_lower holds (etc/passwd, bin/tool2, opq/, usr/share/doc).
s="$work/whiteouts"
mkdir -p "$s"/{etc,bin,opq,usr/share/doc}
: >"$s/etc/.wh.passwd"
: >"$s/bin/.wh.tool2"
: >"$s/opq/.wh..wh..opq"
: >"$s/usr/share/doc/.wh..wh..opq"
printf 'new readme\n' >"$s/usr/share/doc/readme.txt"
: >"$s/.wh.gone"
: >"$s/.wh.dirlink"
gtar --format=gnu -cf "$L/whiteouts-gnu.tar" -C "$s" .
gzip -9n <"$L/whiteouts-gnu.tar" >"$L/whiteouts-gnu.tar.gz"
zstd -q -19 <"$L/whiteouts-gnu.tar" >"$L/whiteouts-gnu.tar.zst"
s="$work/opaque-root"
mkdir -p "$s/etc"
: >"$s/.wh..wh..opq"
printf 'only file\n' >"$s/etc/passwd"
gtar --format=gnu -cf "$L/opaque-root-gnu.tar" -C "$s" .

# Long names and link targets: PAX records and GNU long-name records; xattrs
# and a UTF-8 name in the PAX one.
s="$work/long"
deep="$(printf 'd%.0s' {1..60})/$(printf 'e%.0s' {1..60})/$(printf 'f%.0s' {1..60})"
mkdir -p "$s/$deep"
printf 'deep\n' >"$s/$deep/$(printf 'n%.0s' {1..120}).txt"
ln -s "$deep/$(printf 'n%.0s' {1..120}).txt" "$s/longlink"
printf 'utf-8\n' >"$s/caf$(printf '\xc3\xa9').txt"
setfattr -n user.mime -v text/plain "$s/caf$(printf '\xc3\xa9').txt" 2>/dev/null || true
pax --xattrs --xattrs-include='user.*' -cf "$L/longnames-pax.tar" -C "$s" .
gtar --format=gnu -cf "$L/longnames-gnu.tar" -C "$s" .

# A sparse file (GNU sparse records).
s="$work/sparse"
mkdir -p "$s"
printf 'head' >"$s/sparse.img"
truncate -s 65536 "$s/sparse.img"
printf 'tail' >>"$s/sparse.img"
gtar --format=gnu --sparse -cf "$L/sparse-gnu.tar" -C "$s" .
# GNU tar names PAX sparse entries after its process id; libarchive's copy
# of the GNU one is deterministic.
bsdtar --format=pax -cf "$L/sparse-pax.tar" "@$L/sparse-gnu.tar"

# A hard link to a file only the lower layer has (bin/tool): the tar carries
# both names, then the target's own entry is deleted from it.
s="$work/lowerlink"
mkdir -p "$s/bin"
printf 'x\n' >"$s/bin/tool"
ln "$s/bin/tool" "$s/bin/tool3"
gtar --format=gnu -cf "$L/lower-hardlink-gnu.tar" -C "$s" bin/tool bin/tool3
gtar --delete -f "$L/lower-hardlink-gnu.tar" bin/tool

# Hostile layers: each tries to reach <case>/canary beside the layer
# directory, or the canary links of the lower layer.
s="$work/hostile"
mkdir -p "$s/a/esc" "$s/b" "$s/x"
ln -s ../canary "$s/b/esc"
printf 'pwned\n' >"$s/a/esc/pwned"
gtar --format=gnu -cf "$L/hostile-symlink-dir.tar" -C "$s/b" esc
gtar --format=gnu -rf "$L/hostile-symlink-dir.tar" -C "$s/a" esc/pwned
zstd -q -19 <"$L/hostile-symlink-dir.tar" >"$L/hostile-symlink-dir.tar.zst"
printf 'pwned\n' >"$s/x/f"
ln "$s/x/f" "$s/x/g"
gtar --format=gnu -P --transform='s,^.*/x/f$,../canary/pwned,' -cf "$L/hostile-dotdot.tar" \
    "$s/x/f"
gtar --format=gnu -P --transform='s,^.*/x/f$,/canary/abs,' -cf "$L/hostile-absolute.tar" \
    "$s/x/f"
gtar --format=gnu -P --transform='s,^.*/x/f$,../canary/file,h' --transform='s,^.*/x/g$,hl,' \
    -cf "$L/hostile-hardlink.tar" "$s/x/f" "$s/x/g"
gtar --format=gnu -P --delete -f "$L/hostile-hardlink.tar" ../canary/file
# Through the lower layer's links esc -> ../case/canary and etc/escfile.
mkdir -p "$s/c/esc" "$s/c/etc" "$s/c/dirlink"
printf 'pwned\n' >"$s/c/esc/pwned"
printf 'pwned\n' >"$s/c/dirlink/pwned"
ln -s /tmp "$s/c/etc/escfile"
gtar --format=gnu -cf "$L/hostile-lower-links.tar" -C "$s/c" esc/pwned dirlink/pwned etc/escfile
printf 'y\n' >"$s/c/hl-src"
ln "$s/c/hl-src" "$s/c/hl"
gtar --format=gnu --transform='s,^hl-src$,etc/escfile,h' -cf "$L/hostile-lower-hardlink.tar" \
    -C "$s/c" hl-src hl
gtar --format=gnu --delete -f "$L/hostile-lower-hardlink.tar" etc/escfile

# Real layer blobs of the tzdata image (zstd), the two small ones.
mkdir -p "$work/oci"
tar -xf "$repo/tests/data/tzdata-oci-zstd.tar" -C "$work/oci"
blobs="$work/oci/blobs/sha256"

# --- image documents ----------------------------------------------------------

man=sha256:ece07d2dbc979a95d35d678a717986e77bbbab67dbff095ac9f021476183972d
cfg=sha256:a2e4e392823938f447a3d19018489a208a0eb7673b0a4a62f8a52c1dfb97cfd8
l1=d582e73239256e7822f0dadfebb2c6541fc93912b4aab73e0dbab8552e035b5b
l2=d5473adbfa785ebc0701601ce9c76f5240224a265e9e6e0c6f5a7b7ee4b87d91
l3=7574d492740844d005927c822bdcf7a0f4d8387e92fdfc8ebfbe8849e1dd56c2
d1=2c348657ad94f5057f7b6df9e0d11d25585c347207350b15ffcac4a6d36cbd30
d2=fe0475a3286d7d5a284e25a1fb009f31767b7b88a7aff4e068897691357c8b27
d3=82d132e8566178fadc3680a312c54d35714882b0d118d5edad27f7f7cb9d18c6
mt_man=application/vnd.oci.image.manifest.v1+json
mt_idx=application/vnd.oci.image.index.v1+json
mt_zst=application/vnd.oci.image.layer.v1.tar+zstd
amd64='"platform":{"os":"linux","architecture":"amd64"}'
arm64='"platform":{"os":"linux","architecture":"arm64","variant":"v8"}'
cp "$blobs/$l3" "$L/tzdata-layer3.tar.zst"
cp "$blobs/$l2" "$L/tzdata-layer2.tar.zst"

# json FILE: writes the here-document to FILE with its line breaks removed,
# so documents can be wrapped anywhere here.
json() { tr -d '\n' >"$1"; }

I="$corpus/oci_index"
cp "$work/oci/index.json" "$I/tzdata.json"
json "$I/named.json" <<EOF
{"schemaVersion":2,"mediaType":"$mt_idx","manifests":[{"mediaType":"$mt_man","digest":"$man",
"size":902,"annotations":{"org.opencontainers.image.ref.name":"tzdata:latest",
"io.containerd.image.name":"docker.io/library/tzdata:latest"}}]}
EOF
json "$I/multi-platform.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"$mt_man","digest":"$man","size":902,$arm64},
{"mediaType":"$mt_man","digest":"$man","size":902,$amd64}]}
EOF
json "$I/two-images.json" <<EOF
{"schemaVersion":2,"manifests":[{"digest":"$man","size":902},
{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"$man"}]}
EOF
json "$I/wrong-type.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"$mt_idx","digest":"$cfg","size":709}]}
EOF
json "$I/sha512.json" <<EOF
{"schemaVersion":2,"manifests":[{"digest":"sha512:00","size":1}]}
EOF

M="$corpus/oci_manifest"
cp "$blobs/${man#sha256:}" "$M/tzdata.json"
json "$M/nested-index.json" <<EOF
{"schemaVersion":2,"mediaType":"$mt_idx","manifests":[{"mediaType":"$mt_man","digest":"$man",
"size":902,$arm64,"annotations":{"org.opencontainers.image.ref.name":"arm"}},
{"mediaType":"$mt_man","digest":"$man","size":902,$amd64}]}
EOF
json "$M/nested-index-shape.json" <<EOF
{"schemaVersion":2,"manifests":[{"digest":"$man","size":902}]}
EOF
json "$M/docker-v2.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
"config":{"digest":"$cfg","size":709},"layers":[
{"mediaType":"$mt_zst","digest":"sha256:$l1","size":4671665},
{"digest":"sha256:$l2","size":2721},{"digest":"sha256:$l3"}],
"annotations":{"io.containerd.image.name":"tzdata:v2"}}
EOF

C="$corpus/oci_config"
cp "$blobs/${cfg#sha256:}" "$C/tzdata.json"
json "$C/minimal.json" <<EOF
{"rootfs":{"type":"layers","diff_ids":["sha256:$d1","sha256:$d2","sha256:$d3"]}}
EOF

D="$corpus/docker_manifest"
json "$D/docker25.json" <<EOF
[{"Config":"blobs/sha256/${cfg#sha256:}","RepoTags":["tzdata:latest"],
"Layers":["blobs/sha256/$l1","blobs/sha256/$l2","blobs/sha256/$l3"],"LayerSources":{
"sha256:$d1":{"mediaType":"$mt_zst","size":4671665,"digest":"sha256:$l1"},
"sha256:$d2":{"mediaType":"$mt_zst","size":2721,"digest":"sha256:$l2"}}}]
EOF
json "$D/classic.json" <<EOF
[{"Config":"${cfg#sha256:}.json","RepoTags":["tzdata:classic","tzdata:other"],
"Layers":["$d1/layer.tar","$d2/layer.tar","./$d3/../$d3/layer.tar"]}]
EOF
json "$D/two-images.json" <<EOF
[{"Config":"${cfg#sha256:}.json","RepoTags":null,
"Layers":["$d1/layer.tar","$d2/layer.tar","$d3/layer.tar"]},
{"Config":"/blobs/sha256/${cfg#sha256:}",
"Layers":["blobs/sha256/$l1","blobs/sha256/$l2","blobs/sha256/$l3"],
"LayerSources":{"sha256:$l3":{"mediaType":"$mt_zst"}}}]
EOF

# Whole image archives, small: the tzdata image's two small layers under a
# config and manifest made for them, as an OCI archive (plain and zstd), a
# docker-archive with symlinked layers, and a legacy docker-archive.
T="$corpus/image_tar"
mkdir -p "$T"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
o="$work/ocitar"
mkdir -p "$o/blobs/sha256"
cp "$blobs/$l2" "$blobs/$l3" "$o/blobs/sha256/"
printf '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
json "$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","rootfs":{"type":"layers",
"diff_ids":["sha256:$d2","sha256:$d3"]}}
EOF
c2="$(sha "$work/config.json")"
cp "$work/config.json" "$o/blobs/sha256/$c2"
json "$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"$mt_man","config":{
"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$c2",
"size":$(size "$work/config.json")},"layers":[
{"mediaType":"$mt_zst","digest":"sha256:$l2","size":$(size "$blobs/$l2")},
{"mediaType":"$mt_zst","digest":"sha256:$l3","size":$(size "$blobs/$l3")}]}
EOF
m2="$(sha "$work/manifest.json")"
cp "$work/manifest.json" "$o/blobs/sha256/$m2"
json "$o/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"$mt_man","digest":"sha256:$m2",
"size":$(size "$work/manifest.json"),"annotations":{"org.opencontainers.image.ref.name":"small"}}]}
EOF
gtar --format=gnu -cf "$T/oci.tar" -C "$o" oci-layout index.json blobs
zstd -q -19 <"$T/oci.tar" >"$T/oci.tar.zst"
k="$work/dockertar"
mkdir -p "$k/blobs/sha256" "$k/$d2" "$k/$d3"
cp "$work/config.json" "$k/$c2.json"
cp "$blobs/$l2" "$blobs/$l3" "$k/blobs/sha256/"
ln -s "../blobs/sha256/$l2" "$k/$d2/layer.tar"
ln -s "../blobs/sha256/$l3" "$k/$d3/layer.tar"
json "$k/manifest.json" <<EOF
[{"Config":"$c2.json","RepoTags":["small:latest"],"Layers":["$d2/layer.tar","$d3/layer.tar"]}]
EOF
gtar --format=gnu -cf "$T/docker.tar" -C "$k" manifest.json "$c2.json" "$d2" "$d3" blobs
g="$work/legacytar"
mkdir -p "$g/base" "$g/top"
printf '{"id":"base"}' >"$g/base/json"
printf '{"id":"top","parent":"base"}' >"$g/top/json"
zstd -q -d <"$blobs/$l3" >"$g/base/layer.tar"
: >"$g/top/layer.tar"
printf '{"small":{"latest":"top"}}' >"$g/repositories"
gtar --format=gnu -cf "$T/legacy.tar" -C "$g" repositories base top
gzip -9n <"$T/legacy.tar" >"$T/legacy.tar.gz"

du -sb "$corpus"/* | sed "s|$corpus/||"
