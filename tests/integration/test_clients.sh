#!/usr/bin/env bash
# test_clients.sh: every example in clients/curl/, the Python client and CLI (clients/python/)
# and the JS client under Node (clients/js/) against a real salientd on loopback, plus a
# second salientd with an API key. Run by `make check`; needs curl, jq, Debian's python3 and
# node >= 18 (scripts/setup.sh --test installs them). Images: the phantoms in tests/data/.
set -u
SALIENTD=${SALIENTD:-server/salientd}
SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { # name, command...: passes when the command succeeds
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "skip: $tool is not installed (scripts/setup.sh --test)"; exit 77; }
done
[ -x "$PY" ] || { echo "skip: no $PY"; exit 77; }

# Two fast demo models, and the faces model when face-api's weights have been fetched
# (scripts/fetch-faceapi.sh); each salientd prints the port the kernel gave it.
mkdir -p "$tmp/repo"
for m in quadrant-demo covid-resnet-demo; do ln -s "$SRCDIR/models/repo/$m" "$tmp/repo/$m"; done
faceapi=
for d in "${SALIENT_FACEAPI_DIR:-}" "$PWD/faceapi" "$SRCDIR/build/faceapi"; do
  if [ -n "$d" ] && [ -f "$d/model/ssd_mobilenetv1_model-weights_manifest.json" ] && [ -f "$d/demo/sample2.jpg" ]; then
    faceapi=$d
    mkdir "$tmp/repo/faces"
    cp "$SRCDIR/models/repo/faces/manifest.json" "$tmp/repo/faces/"
    ln -s "$d"/model/* "$tmp/repo/faces/"
    break
  fi
done
start() { # log file, extra flags... -> sets $port
  "$SALIENTD" --model-repo "$tmp/repo" --port 0 --host 127.0.0.1 --threads 1 "${@:2}" 2>"$1" &
  pids+=($!)
  port=
  for _ in $(seq 1 $((${SALIENT_START_TIMEOUT:-120} * 20))); do  # a hang guard, in 0.05 s steps
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$1")
    [ -n "$port" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "salientd did not start:"; cat "$1"; exit 1
}
start "$tmp/log"
export SALIENT_URL=http://127.0.0.1:$port
key=clients-test-key-$$
start "$tmp/keyed.log" --api-key "$key"
keyed=http://127.0.0.1:$port
unset SALIENT_API_KEY

data=$SRCDIR/tests/data
a=$data/phantom_00000.png b=$data/phantom_00001.png

# ---- clients/curl ---------------------------------------------------------------------------
C=$SRCDIR/clients/curl
run() { "$@" >"$tmp/out" 2>"$tmp/err"; }   # exit status of the example, output in $tmp/out
jqt() { jq -e "$1" "$tmp/out" >/dev/null 2>&1; }   # a jq expression that must be true

run "$C/health.sh"; check "curl/health.sh: live and ready" \
  test "$?:$(tr -d '\n' <"$tmp/out")" = '0:{"live":true}{"ready":true}'
run "$C/models.sh"; check "curl/models.sh lists both models as demo" \
  jqt '[.models[] | select(.demo) | .name] | sort == ["covid-resnet-demo", "quadrant-demo"]'
run "$C/predict-json.sh" quadrant-demo "$a" 2; rc=$?
check "curl/predict-json.sh: 2 labels best first, demo" \
  jqt '.model == "quadrant-demo" and .demo and (.predictions[0].labels | length == 2 and .[0].score >= .[1].score)'
[ $rc -eq 0 ] || bad "curl/predict-json.sh exit $rc: $(cat "$tmp/err")"
top=$(jq -r '.predictions[0].labels[0].label' "$tmp/out")
run "$C/predict-raw.sh" quadrant-demo "$a"
check "curl/predict-raw.sh: the same best label as JSON ($top)" \
  jqt ".predictions[0].labels[0].label == \"$top\" and (.predictions[0].labels | length == 3)"
run "$C/predict-raw.sh" quadrant-demo "$data/phantom_00000_q90.jpg"
check "curl/predict-raw.sh with a JPEG" jqt '.predictions[0].labels | length == 3'
run "$C/predict-multipart.sh" quadrant-demo "$a" "$b"
check "curl/predict-multipart.sh: two images, two predictions, top_k 3 from the form" \
  jqt ".predictions | length == 2 and (.[0].labels | length == 3) and .[0].labels[0].label == \"$top\""
run "$C/v2-infer.sh" covid-resnet-demo "$a" "$b"
check "curl/v2-infer.sh: probs [2, 3] summing to 1 per image" \
  jqt '.model_name == "covid-resnet-demo" and (.outputs[] | select(.name == "probs") | .shape == [2, 3] and ((.data[0:3] | add) - 1 | fabs) < 1e-4)'
run "$C/metrics.sh"
check "curl/metrics.sh: requests counted per model" grep -q '^salient_model_requests_total{model="quadrant-demo",status="200"} [1-9]' "$tmp/out"
run "$C/predict-json.sh" no-such-model "$a"; rc=$?
check "curl/predict-json.sh on an unknown model: exit 22, the server's error printed" \
  test "$rc:$(cat "$tmp/out")" = "22:{\"error\":\"no model named 'no-such-model' (see GET /v1/models)\"}"
SALIENT_URL=$keyed run "$C/models.sh"; rc=$?
check "curl/models.sh without the key: 401" test "$rc:$(jq -r .error "$tmp/out")" = "22:this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
SALIENT_URL=$keyed SALIENT_API_KEY=$key run "$C/predict-multipart.sh" quadrant-demo "$a"
check "curl/predict-multipart.sh with SALIENT_API_KEY" jqt '.predictions | length == 1'
# Attention overlays: every layer's and the two CAMs asked for, as PNG files.
run "$C/predict-attention.sh" quadrant-demo "$a" "$tmp/overlays" Normal COVID-19
check "curl/predict-attention.sh exits 0" test $? -eq 0
n=$(grep -c '^wrote ' "$tmp/out")
check "curl/predict-attention.sh wrote the CAMs asked for" test -f "$tmp/overlays/cam_Normal.png" -a -f "$tmp/overlays/cam_COVID-19.png"
check "curl/predict-attention.sh wrote the layer overlay" test -f "$tmp/overlays/attention_backbone0.png"
check "curl/predict-attention.sh: every file is a PNG ($n)" \
  test "$n" -ge 3 -a "$(for f in "$tmp"/overlays/*.png; do head -c 4 "$f" | od -An -c | tr -d ' \n'; echo; done | sort -u)" = '211PNG'
run "$C/verify.sh" "$a"; check "curl/verify.sh with one image: usage, exit 2" test $? -eq 2
if [ -n "$faceapi" ]; then
  p1=$faceapi/demo/sample1.jpg p2=$faceapi/demo/sample2.jpg
  run "$C/verify.sh" "$p1" "$p1"
  check "curl/verify.sh: a photo against itself is the same person" jqt '.same_person == true and .distance < 1e-4 and .threshold == 0.6'
  run "$C/verify.sh" "$p1" "$p2"
  check "curl/verify.sh: two people are not" jqt '.same_person == false and .distance > .threshold and (.faces | length == 2)'
  run "$C/verify.sh" "$p1" "$a"; rc=$?
  check "curl/verify.sh: no face in a radiograph: exit 22, the server's 422 in words" \
    test "$rc:$(jq -r .error "$tmp/out" | cut -c1-24)" = "22:no face found in image 2"
  run "$C/predict-raw.sh" faces "$p1"
  check "curl/predict-raw.sh on the faces model: faces with box, landmarks, age, gender, expression" \
    jqt '(.predictions[0].faces | length >= 1) and (.predictions[0].faces[0] | .box.width > 0 and (.landmarks | length == 68) and (.age | type == "number") and .gender.label and .expression.label)'
  face_env=(SALIENT_FACE_PHOTOS="$p1 $p2")
else
  echo "# no face-api weights (scripts/fetch-faceapi.sh): face verification not checked"
  face_env=()
fi

# ---- clients/python -------------------------------------------------------------------------
echo "# clients/python (python3 -I -S: the standard library only)"
mkdir -p "$tmp/py"
env "${face_env[@]}" SALIENT_KEYED_URL=$keyed SALIENT_TEST_KEY=$key "$PY" -I -S "$SRCDIR/clients/python/test_salient_client.py" "$data" "$tmp/py" >"$tmp/py.log" 2>&1
rc=$?
sed 's/^/  /' "$tmp/py.log"
check "clients/python: $(tail -n 1 "$tmp/py.log")" test $rc -eq 0

# ---- clients/js -----------------------------------------------------------------------------
if command -v node >/dev/null && node -e 'process.exit(typeof fetch === "function" ? 0 : 1)'; then
  for n in node ${SALIENT_NODE18:+"$SALIENT_NODE18"}; do
    env "${face_env[@]}" SALIENT_KEYED_URL=$keyed SALIENT_TEST_KEY=$key "$n" "$SRCDIR/clients/js/test_salient.mjs" "$a" "$b" >"$tmp/js.log" 2>&1
    rc=$?
    sed 's/^/  /' "$tmp/js.log"
    check "clients/js under $(sed -n 's/^# node //p' "$tmp/js.log"): $(tail -n 1 "$tmp/js.log")" test $rc -eq 0
  done
  node "$SRCDIR/clients/js/predict.mjs" quadrant-demo "$a" >"$tmp/out" 2>&1
  check "clients/js/predict.mjs prints a JSON line" jqt ".labels[0].label == \"$top\" and .demo"
else
  bad "clients/js: node >= 18 (with fetch) is not installed"
fi

# No request the clients made reached the log with image bytes (only method, path, status).
check "the server log has one line per request, no bodies" test "$(grep -c 'base64\|iVBOR' "$tmp/log")" -eq 0
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
