#!/usr/bin/env bash
# Print the path of a working CPython interpreter of version MAJOR.MINOR, or fail saying where
# it looked. Usage: ci/find_python.sh 3.12
# A pyenv shim on PATH that names a version pyenv has not selected fails when run, so every
# candidate is run and must report the asked version and have pip and venv.
set -euo pipefail
want="${1:?usage: ci/find_python.sh MAJOR.MINOR (e.g. 3.12)}"
root="${PYENV_ROOT:-$HOME/.pyenv}"
candidates=()
if found="$(command -v "python$want" 2>/dev/null)"; then
    candidates+=("$found")
fi
# Newest patch release first.
while IFS= read -r dir; do
    candidates+=("$dir/bin/python$want")
done < <(ls -1d "$root"/versions/"$want".* 2>/dev/null | sort -Vr)
candidates+=("/usr/local/bin/python$want" "/usr/bin/python$want")
for py in "${candidates[@]}"; do
    [ -x "$py" ] || continue
    got="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || continue
    [ "$got" = "$want" ] || continue
    "$py" -c 'import ensurepip, venv' 2>/dev/null || continue
    "$py" -c 'import sys; print(sys.executable)'
    exit 0
done
{
    echo "find_python: no working CPython $want (with venv and ensurepip) found."
    echo "  looked at: python$want on PATH, $root/versions/$want.*/bin/python$want,"
    echo "             /usr/local/bin/python$want, /usr/bin/python$want"
    echo "  install it (e.g. 'pyenv install $want') or leave $want out of MAGNETAR_WHEEL_PYTHONS."
} >&2
exit 1
