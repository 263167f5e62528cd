#!/usr/bin/env bash
# Set up, build and run strata on a fresh Debian 12 machine (as root).
#
#   tools/dev.sh demo   install, build, import a real image archive, show it
#   tools/dev.sh test   install, build (plain and sanitizer builds), run every
#                       test suite in both mount modes and under the
#                       sanitizers, then fuzz each libFuzzer target briefly
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config libsqlite3-dev libsqlitecpp-dev libarchive-dev
          libspdlog-dev libboost-test-dev libcli11-dev nlohmann-json3-dev libssl-dev
          sqlite3 libarchive-tools tar gzip zstd python3)

install_packages() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

build() {  # build DIR [cmake args...]
    local dir=$1; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

case "${1:-}" in
demo)
    install_packages
    build build
    root=${STRATA_DEMO_ROOT:-/tmp/strata-demo}
    archive=${2:-tests/data/tzdata-oci-zstd.tar}
    s() { build/tools/strata --root "$root" "$@"; }
    top=$(s import "$archive" --name demo | tail -n 1)
    s ls
    s tree
    s show "$top"
    s exists demo-sandbox || s create --rw --parent "$top" demo-sandbox
    mnt=$(s get demo-sandbox)
    echo "sandbox demo-sandbox mounted at $mnt:"
    ls "$mnt"
    echo "first entries of $mnt/usr/share/zoneinfo:"
    ls "$mnt/usr/share/zoneinfo" | head -n 10
    s put demo-sandbox
    s status
    ;;
test)
    install_packages
    build build
    build build-asan -DSTRATA_SANITIZE=ON
    # Fuzzing first, so that the last lines are CTest's summary.
    echo "== a short run of every libFuzzer target (docs/fuzzing.md)"
    tests/fuzz/run.sh "${STRATA_FUZZ_SECONDS:-20}"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    for mode in overlay copy; do
        echo "== tests, mount mode $mode"
        STRATA_MOUNT_MODE=$mode ctest --test-dir build --output-on-failure
    done
    echo "== tests under AddressSanitizer and UndefinedBehaviorSanitizer, mount mode overlay"
    STRATA_MOUNT_MODE=overlay ctest --test-dir build-asan --output-on-failure
    ;;
*)
    echo "usage: tools/dev.sh demo|test" >&2
    exit 2
    ;;
esac
