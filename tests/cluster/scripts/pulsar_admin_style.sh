#!/usr/bin/env bash
# Drives the CLI the way a pulsar-admin deployment script does: create from a YAML
# config, parse the JSON that list/get/status/stats print, update, then delete.
# Usage: pulsar_admin_style.sh PYTHON NAME PY_FILE CONFIG_DIR   (MAGNETAR_ADMIN_URL is set)
set -euo pipefail
PY="$1"; NAME="$2"; CODE="$3"; DIR="$4"
admin() { "$PY" -m engine functions "$@"; }
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

cat > "$DIR/$NAME.yaml" <<YAML
tenant: public
namespace: default
name: $NAME
className: exclaim_example.Exclaim
py: $CODE
inputs: ["persistent://public/default/$NAME-in"]
output: persistent://public/default/$NAME-out
logLevel: INFO
inputTypeClassName: java.lang.String
subscriptionPosition: Earliest
parallelism: 1
YAML

test "$(admin create --function-config-file "$DIR/$NAME.yaml" 2>"$DIR/warnings")" = "Created successfully"
# The config sets a field without effect on Python functions: the CLI passes on the warning.
grep -x "magnetar: warning: inputTypeClassName is accepted but has no effect: .*" "$DIR/warnings" >/dev/null

# pulsar-admin prints one name per line; --output json prints the JSON array.
admin list | grep -x "$NAME" >/dev/null
admin list --output json | json "'$NAME' in d" | grep -x True >/dev/null
test "$(admin get --tenant public --namespace default --name "$NAME" | json "d['className']")" = "exclaim_example.Exclaim"
test "$(admin get --fqfn "public/default/$NAME" | json "d['output']")" = "persistent://public/default/$NAME-out"

running=0
for _ in $(seq 1 300); do
  running=$(admin status --name "$NAME" | json "d['numRunning']")
  [ "$running" = 1 ] && break
  sleep 0.1
done
test "$running" = 1
admin getstatus --name "$NAME" | json "d['instances'][0]['status']['running']" | grep -x True >/dev/null
admin stats --name "$NAME" | json "d['instances'][0]['metrics']['receivedTotal'] >= 0" | grep -x True >/dev/null
admin status --name "$NAME" --output table | grep RUNNING >/dev/null

test "$(admin update --name "$NAME" --parallelism 2 --update-auth-data)" = "Updated successfully"
test "$(admin get --name "$NAME" | json "d['parallelism']")" = 2
test "$(admin restart --name "$NAME")" = "Restarted successfully"
test "$(admin available-functions --output json | json "len(d)")" = 0
test -z "$(admin reload)"
test "$(admin delete --name "$NAME")" = "Deleted successfully"
if admin get --name "$NAME" 2>"$DIR/err"; then exit 1; fi
grep "doesn't exist" "$DIR/err" >/dev/null
echo "script passed"
