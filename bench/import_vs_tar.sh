#!/usr/bin/env bash
# Import speed and memory against GNU tar, in one script so both run on the
# same machine state. Prints ratios, not absolute targets:
#
#   time ratio   strata import (digests checked, file index written, data
#                synced) / GNU tar extracting the same layer blobs in order
#                followed by one sync
#   rss ratio    peak RSS importing the large archive / the small archive:
#                near 1 means memory does not grow with layer size
#
# usage: bench/import_vs_tar.sh [BIG_ARCHIVE] [SMALL_ARCHIVE]   (as root)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
strata=${STRATA:-$here/build/tools/strata}
big=${1:-$here/../shared/images/bookworm-oci-gzip.tar}
small=${2:-$here/tests/data/tzdata-oci-zstd.tar}
work=$(mktemp -d /tmp/strata-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

measure() {  # measure OUT_PREFIX CMD...: wall seconds and peak RSS (KiB)
    local out=$1; shift
    /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
}

# GNU tar: extract the archive's layer blobs, in manifest order, into one tree.
mkdir -p "$work/oci" "$work/tar-root"
tar -C "$work/oci" -xf "$big"
layers=$(python3 - "$work/oci" <<'PY'
import json, sys, os
root = sys.argv[1]
index = json.load(open(os.path.join(root, "index.json")))
digest = index["manifests"][0]["digest"].split(":")[1]
manifest = json.load(open(os.path.join(root, "blobs/sha256", digest)))
print(" ".join(os.path.join(root, "blobs/sha256", l["digest"].split(":")[1])
               for l in manifest["layers"]))
PY
)
sync
cat > "$work/tar.sh" <<SH
set -e
for l in $layers; do tar -C "$work/tar-root" --numeric-owner -xzf "\$l"; done
sync
SH
measure "$work/t.tar" bash "$work/tar.sh"

sync
measure "$work/t.big" "$strata" --root "$work/store-big" import "$big"
measure "$work/t.small" "$strata" --root "$work/store-small" import "$small"

read -r tar_s tar_kb < "$work/t.tar"
read -r big_s big_kb < "$work/t.big"
read -r small_s small_kb < "$work/t.small"
echo "gnu tar:        ${tar_s} s"
echo "strata import:  ${big_s} s, peak RSS ${big_kb} KiB ($(basename "$big"))"
echo "strata import:  ${small_s} s, peak RSS ${small_kb} KiB ($(basename "$small"))"
python3 -c "print(f'time ratio strata/tar: {$big_s/$tar_s:.2f}')"
python3 -c "print(f'rss ratio big/small:   {$big_kb/$small_kb:.2f}')"
