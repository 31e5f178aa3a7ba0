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
grep -q "must be an integer 0..65535" "$tmp/err" && ok "--port error says the range" || bad "--port error says the range"
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
for _ in $(seq 1 $((${SALIENT_START_TIMEOUT:-120} * 20))); do  # a hang guard, in 0.05 s steps
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then bad "salientd starts"; cat "$tmp/log"; echo "$pass passed, $fail failed"; exit 1; fi
ok "salientd starts on port $port"
grep -q "skipped: .*broken/manifest.json: not JSON" "$tmp/log" && ok "bad manifest skipped with its reason" || bad "bad manifest skipped with its reason"
grep -q "loaded good (family densenet, version 1, demo; input 128x128x3, 14 labels" "$tmp/log" && ok "demo model loaded" || bad "demo model loaded"
grep -q "not loaded: model 'noweights': .*noweights/model.safetensors" "$tmp/log" && ok "model without weights not loaded, file named" || bad "model without weights not loaded, file named"

base="http://127.0.0.1:$port"
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
expect "GET /v2/health/live status" 200 "$(req "$base/v2/health/live")"
expect "GET /v2/health/live body" '{"live":true}' "$(cat "$tmp/body")"
# Ready means every model in the repository is loaded: 'noweights' is not.
expect "GET /v2/health/ready with a model not loaded" 503 "$(req "$base/v2/health/ready")"
expect "GET /v2/health/ready body" '{"ready":false}' "$(cat "$tmp/body")"
expect "POST /v2/repository/index" 200 "$(req -X POST "$base/v2/repository/index")"
grep -q '{"name":"noweights","state":"UNAVAILABLE","reason":"model '"'"'noweights'"'"': .*model.safetensors' "$tmp/body" \
  && ok "index names the unavailable model and why" || bad "index names the unavailable model and why: $(cat "$tmp/body")"
grep -q '{"name":"good","state":"READY","version":"1"}' "$tmp/body" && ok "index lists the ready model" || bad "index lists the ready model"
expect "GET /v2/models/noweights/ready" 503 "$(req "$base/v2/models/noweights/ready")"
expect "GET /v2/models/good/ready" 200 "$(req "$base/v2/models/good/ready")"
rm -rf "$tmp/repo/noweights"
expect "index after removing it" 200 "$(req -X POST "$base/v2/repository/index")"
expect "GET /v2/health/ready once every model is loaded" 200 "$(req "$base/v2/health/ready")"
expect "GET /v2/health/ready body" '{"ready":true}' "$(cat "$tmp/body")"
expect "GET /v2 status" 200 "$(req "$base/v2")"
grep -q '"name":"salient"' "$tmp/body" && grep -q '"model_repository"' "$tmp/body" && ok "GET /v2 body" || bad "GET /v2 body: $(cat "$tmp/body")"
expect "unknown path 404" 404 "$(req "$base/nope")"
expect "unknown path error JSON" '{"error":"no route for GET /nope (see GET /openapi.json)"}' "$(cat "$tmp/body")"
expect "POST on health 405" 405 "$(req -X POST --data x "$base/v2/health/live")"
grep -q '"error":"method POST is not allowed on /v2/health/live (allowed: GET, HEAD)"' "$tmp/body" && ok "405 error JSON" || bad "405 error JSON: $(cat "$tmp/body")"
grep -q 'GET /v2/health/live model=- status=200' "$tmp/log" && ok "request logged" || bad "request logged"

kill -TERM "$pid"; wait "$pid"; expect "SIGTERM exits 0" 0 $?
pid=
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
