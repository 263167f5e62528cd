#!/usr/bin/env bash
# Builds strata's libFuzzer targets and runs each for SECONDS (docs/fuzzing.md).
#
#   tests/fuzz/run.sh SECONDS [TARGET...]
#
# Installs clang with Debian's packages when no usable one is present,
# configures build-fuzz/ (or $STRATA_FUZZ_BUILD_DIR) with clang and
# -DSTRATA_FUZZ=ON, builds the targets (-j2), and runs each one on a copy of
# its seed corpus in a temporary directory: tests/fuzz/corpus is only read.
# Crash, leak, timeout and out-of-memory inputs are kept in
# <build dir>/fuzz-artifacts/<target>/ (or $STRATA_FUZZ_ARTIFACTS/<target>/).
# Prints one summary line per target and exits 1 if any target found
# something, 2 on a usage error.
set -euo pipefail

usage() {
    echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && "$1" =~ ^[0-9]+$ && "$1" -gt 0 ]] || usage
seconds="$1"
shift

repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${STRATA_FUZZ_BUILD_DIR:-$repo/build-fuzz}"
artifacts="${STRATA_FUZZ_ARTIFACTS:-$build/fuzz-artifacts}"

# target:corpus:dictionary:max_len
all_targets=(
    fuzz_layer_tar:layer_tar:tar.dict:65536
    fuzz_layer_tar_lower:layer_tar:tar.dict:65536
    fuzz_oci_index:oci_index:json.dict:8192
    fuzz_oci_manifest:oci_manifest:json.dict:8192
    fuzz_oci_config:oci_config:json.dict:8192
    fuzz_docker_manifest:docker_manifest:json.dict:8192
    fuzz_image_tar:image_tar:image_tar.dict:65536
)

# A clang new enough for the engine (C++20 lambda captures of structured
# bindings need clang 16) whose libFuzzer runtime links.
find_clang() {
    local v probe
    probe="$(mktemp -d)"
    printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
        'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' \
        >"$probe/probe.cpp"
    for v in 19 18 17 16; do
        if command -v "clang++-$v" >/dev/null &&
            "clang++-$v" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" \
                -o "$probe/probe" 2>/dev/null; then
            rm -rf "$probe"
            echo "$v"
            return 0
        fi
    done
    rm -rf "$probe"
    return 1
}

if ! version="$(find_clang)"; then
    echo "run.sh: installing clang-19 and its libFuzzer runtime with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    install=(apt-get install -y --no-install-recommends clang-19 libclang-rt-19-dev llvm-19)
    "${install[@]}" >/dev/null || { apt-get update >/dev/null && "${install[@]}" >/dev/null; }
    version="$(find_clang)" || { echo "run.sh: no usable clang after installing" >&2; exit 1; }
fi
symbolizer="/usr/lib/llvm-$version/bin/llvm-symbolizer"
[[ -x "$symbolizer" ]] || symbolizer="$(command -v llvm-symbolizer || true)"

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_FUZZ=ON \
    -DCMAKE_C_COMPILER="clang-$version" -DCMAKE_CXX_COMPILER="clang++-$version" >/dev/null
cmake --build "$build" -j2 --target strata_fuzz >"$build/fuzz-build.log" 2>&1 ||
    { tail -n 40 "$build/fuzz-build.log" >&2; echo "run.sh: build failed" >&2; exit 1; }

selected=()
for spec in "${all_targets[@]}"; do
    name="${spec%%:*}"
    if [[ $# -eq 0 ]] || printf '%s\n' "$@" | grep -qx "$name"; then selected+=("$spec"); fi
done
[[ ${#selected[@]} -gt 0 ]] || { echo "run.sh: no such target: $*" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
[[ -n "$symbolizer" ]] && export ASAN_SYMBOLIZER_PATH="$symbolizer"

failed=0
summaries=()
for spec in "${selected[@]}"; do
    IFS=: read -r name corpus dict max_len <<<"$spec"
    dir="$work/$name"
    mkdir -p "$dir/corpus" "$dir/tmp" "$artifacts/$name"
    cp "$repo/tests/fuzz/corpus/$corpus/"* "$dir/corpus/"
    log="$artifacts/$name/fuzz.log"
    echo "run.sh: $name for ${seconds}s (log: $log)" >&2
    rc=0
    TMPDIR="$dir/tmp" "$build/tests/fuzz/$name" "$dir/corpus" \
        -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -timeout=30 \
        -dict="$repo/tests/fuzz/dict/$dict" -artifact_prefix="$artifacts/$name/" \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
    if [[ $rc -eq 0 ]]; then
        result="ok"
    else
        failed=1
        found="$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)"
        result="FINDING (exit $rc) ${found:-see $log}"
        tail -n 60 "$log" >&2
    fi
    summaries+=("$(printf '%-22s executions=%s %s result=%s' "$name" "${execs:-?}" \
        "${cov:-cov: ?}" "$result")")
done

printf '%s\n' "${summaries[@]}"
exit "$failed"
