#!/usr/bin/env bash
# test_salientd.sh: a real salientd on a loopback port: flags, health, routing, model
# repository scanning, SIGTERM. Run by `make check` (needs curl, installed by scripts/setup.sh).
set -u
SALIENTD=${SALIENTD:-server/salientd}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect() { # name, want, got
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}

# Flags.
"$SALIENTD" --help >"$tmp/help" 2>&1; expect "--help exits 0" 0 $?
grep -q -- "--model-repo" "$tmp/help" && ok "--help lists --model-repo" || bad "--help lists --model-repo"
"$SALIENTD" --port 70000 >/dev/null 2>"$tmp/err"; expect "--port 70000 exits 2" 2 $?
grep -q "must be 0..65535" "$tmp/err" && ok "--port error says the range" || bad "--port error says the range"
"$SALIENTD" --no-such-flag >/dev/null 2>&1; expect "unknown flag exits 2" 2 $?
"$SALIENTD" --model-repo "$tmp/none" --port 0 >/dev/null 2>"$tmp/err"; expect "missing repo exits 1" 1 $?
grep -q "not a readable directory" "$tmp/err" && ok "missing repo is named" || bad "missing repo is named"

# A repository with one real model (the committed CheXNet demo), a manifest that is not JSON,
# a model whose weights are missing, and a stray file.
SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mkdir -p "$tmp/repo/broken" "$tmp/repo/noweights"
cp -r "$SRCDIR/models/repo/chexnet-demo" "$tmp/repo/good"
echo '{"family": ' >"$tmp/repo/broken/manifest.json"
cp "$SRCDIR/models/repo/chexnet-demo/manifest.json" "$tmp/repo/noweights/manifest.json"
touch "$tmp/repo/README"
"$SALIENTD" --model-repo "$tmp/repo" --port 0 --host 127.0.0.1 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then bad "salientd starts"; cat "$tmp/log"; echo "$pass passed, $fail failed"; exit 1; fi
ok "salientd starts on port $port"
grep -q "skipped: .*broken/manifest.json: not JSON" "$tmp/log" && ok "bad manifest skipped with its reason" || bad "bad manifest skipped with its reason"
grep -q "loaded good (family densenet, version 1, demo; input 128x128x3, 14 labels" "$tmp/log" && ok "demo model loaded" || bad "demo model loaded"
grep -q "skipped: model 'noweights': .*noweights/model.safetensors" "$tmp/log" && ok "model without weights skipped, file named" || bad "model without weights skipped, file named"

base="http://127.0.0.1:$port"
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
expect "GET /v2/health/live status" 200 "$(req "$base/v2/health/live")"
expect "GET /v2/health/live body" '{"live":true}' "$(cat "$tmp/body")"
expect "GET /v2/health/ready status" 200 "$(req "$base/v2/health/ready")"
expect "GET /v2/health/ready body" '{"ready":true}' "$(cat "$tmp/body")"
expect "GET /v2 status" 200 "$(req "$base/v2")"
grep -q '"name":"salient"' "$tmp/body" && grep -q '"models":1' "$tmp/body" && ok "GET /v2 body" || bad "GET /v2 body: $(cat "$tmp/body")"
expect "unknown path 404" 404 "$(req "$base/nope")"
expect "unknown path error JSON" '{"error":"no route for GET /nope"}' "$(cat "$tmp/body")"
expect "POST on health 405" 405 "$(req -X POST --data x "$base/v2/health/live")"
grep -q '"error":"method POST not allowed' "$tmp/body" && ok "405 error JSON" || bad "405 error JSON"
grep -q 'GET /v2/health/live 200' "$tmp/log" && ok "request logged" || bad "request logged"

kill -TERM "$pid"; wait "$pid"; expect "SIGTERM exits 0" 0 $?
pid=
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
