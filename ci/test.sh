#!/usr/bin/env bash
# The whole test suite from a fresh checkout: a virtual environment, the package built
# with its Cython hot path and generated protobuf code, then lint, types and tests.
# Extra arguments run pytest with them alone. Needs Python >= 3.10 and a C compiler; the wheel test builds
# for CPython 3.10-3.13 (ci/find_python.sh finds them) and the dashboard test installs chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# The dashboard's browser test drives Debian's Chromium (Playwright never downloads a browser here).
if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium (for the dashboard's browser test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
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
export MAGNETAR_REQUIRE_NATIVE=1
if [ "$#" -gt 0 ]; then
    "$VENV/bin/python" -m pytest "$@"
    exit
fi
# Two test processes, each taking whole files (their module fixtures start clusters once), so
# the suite fits CI's time on two cores; MAGNETAR_TEST_PROCESSES=0 runs it in this process.
# The REST fuzzing makes its tests from the OpenAPI document as it is collected, which parallel
# processes do not share: it runs on its own afterwards.
"$VENV/bin/python" -m pytest -n "${MAGNETAR_TEST_PROCESSES:-2}" --dist loadfile --ignore=tests/fuzz
"$VENV/bin/python" -m pytest tests/fuzz
