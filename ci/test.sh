#!/usr/bin/env bash
# The whole test suite from a fresh checkout: a virtual environment, the package built
# with its Cython hot path and generated protobuf code, then lint, types and tests.
# Extra arguments go to pytest. Needs only Python >= 3.10 and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${MAGNETAR_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"
"$VENV/bin/ruff" check engine tests bench ci setup.py
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest (both hot-path twins)"
MAGNETAR_REQUIRE_NATIVE=1 "$VENV/bin/python" -m pytest "$@"
