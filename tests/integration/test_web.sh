#!/usr/bin/env bash
# test_web.sh: the demo frontend. First salientd's --web-root serving with curl (types, no way
# out of the folder, open without the API key); then the page itself in Debian's Chromium,
# headless, driven by playwright-core (clients/web/test/web.test.mjs): a phantom X-ray, a file
# the server refuses, a photograph with faces (when a faces model is served), an API key.
# Screenshots go to tests/integration/test_web.out/ under the build folder.
# Needs curl; the browser part needs node, /usr/bin/chromium and `npm ci` in clients/web/test
# (scripts/setup.sh --test does all three) and is skipped (exit 77) without them.
set -u
SALIENTD=${SALIENTD:-server/salientd}
SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${TEST_WEB_OUT:-$PWD/tests/integration/test_web.out}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect() { # name, want, got
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

# chexnet-demo (4 attention layers and exact CAMs), and the faces model when face-api's weights
# and photographs have been fetched (scripts/fetch-faceapi.sh).
mkdir -p "$tmp/repo"
ln -s "$SRCDIR/models/repo/chexnet-demo" "$tmp/repo/chexnet-demo"
faceapi=
for d in "${SALIENT_FACEAPI_DIR:-}" "$PWD/faceapi" "$SRCDIR/build/faceapi"; do
  if [ -n "$d" ] && [ -f "$d/model/ssd_mobilenetv1_model-weights_manifest.json" ] && [ -f "$d/demo/sample1.jpg" ]; then
    faceapi=$d
    mkdir "$tmp/repo/faces"
    cp "$SRCDIR/models/repo/faces/manifest.json" "$tmp/repo/faces/"
    ln -s "$d"/model/* "$tmp/repo/faces/"
    break
  fi
done
start() { # log file, flags... -> sets $port
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
web=$SRCDIR/clients/web
start "$tmp/log" --web-root "$web"
base=http://127.0.0.1:$port
key=web-test-key-$$
start "$tmp/keyed.log" --web-root "$web" --api-key "$key"
keyed=http://127.0.0.1:$port
start "$tmp/plain.log"
plain=http://127.0.0.1:$port

# ---- static files ---------------------------------------------------------------------------
get() { curl -s --path-as-is -o "$tmp/body" -w '%{http_code} %{content_type}' "$@"; }
expect "GET / is index.html" "200 text/html; charset=utf-8" "$(get "$base/")"
cmp -s "$tmp/body" "$web/index.html" && ok "GET / serves the file unchanged" || bad "GET / serves the file unchanged"
expect "GET /static/app.js" "200 text/javascript; charset=utf-8" "$(get "$base/static/app.js")"
expect "GET /static/app.css" "200 text/css; charset=utf-8" "$(get "$base/static/app.css")"
expect "GET /static/salient.js (the JS client, through its link)" "200 text/javascript; charset=utf-8" "$(get "$base/static/salient.js")"
cmp -s "$tmp/body" "$SRCDIR/clients/js/salient.js" && ok "salient.js is clients/js/salient.js" || bad "salient.js is clients/js/salient.js"
expect "HEAD / has the type and length" "200 text/html; charset=utf-8" "$(get -I "$base/")"
grep -qi "^content-length: $(wc -c <"$web/index.html")" "$tmp/body" && ok "HEAD / Content-Length" || bad "HEAD / Content-Length: $(cat "$tmp/body")"
expect "/static/../../etc/passwd: no route" 404 "$(get "$base/static/../../etc/passwd" | cut -d' ' -f1)"
expect "/static/..%2f..%2fetc%2fpasswd: no route" 404 "$(get "$base/static/..%2f..%2fetc%2fpasswd" | cut -d' ' -f1)"
expect "/static/%2e%2e is refused" "404:{\"error\":\"no file '..' in the web root\"}" "$(get "$base/static/%2e%2e" | cut -d' ' -f1):$(cat "$tmp/body")"
expect "/static/.hidden.js: dot-files are refused" 404 "$(get "$base/static/.hidden.js" | cut -d' ' -f1)"
expect "/static/<file of a type not served>" "404:{\"error\":\"'README' is not a file type the web root serves\"}" "$(get "$base/static/README" | cut -d' ' -f1):$(cat "$tmp/body")"
expect "/static/missing.js" "404:{\"error\":\"no file 'missing.js' in the web root\"}" "$(get "$base/static/missing.js" | cut -d' ' -f1):$(cat "$tmp/body")"
expect "POST / is 405" 405 "$(get -X POST --data x "$base/" | cut -d' ' -f1)"
expect "with an API key, the page is served without it" 200 "$(get "$keyed/" | cut -d' ' -f1)"
expect "... and the API still needs it" 401 "$(get "$keyed/v1/models" | cut -d' ' -f1)"
expect "without --web-root, / says so" "404" "$(get "$plain/" | cut -d' ' -f1)"
grep -q 'without --web-root' "$tmp/body" && ok "... in words" || bad "... in words: $(cat "$tmp/body")"
grep -q "Content-Security-Policy\" content=\"default-src 'none'; script-src 'self'" "$web/index.html" && ok "the page forbids other origins (CSP)" || bad "the page forbids other origins (CSP)"
if grep -rEn "(src|href)=\"(https?:)?//|import .* from ['\"]https?:|url\((['\"])?https?:" "$web/index.html" "$web/static/"*.js "$web/static/"*.css; then
  bad "no URL of another host in the frontend's files"
else
  ok "no URL of another host in the frontend's files"
fi

# ---- the page in a browser ------------------------------------------------------------------
why=
command -v node >/dev/null || why="node is not installed"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || why="${why:+$why; }no ${CHROMIUM:-/usr/bin/chromium} (Debian package chromium)"
[ -d "$SRCDIR/clients/web/test/node_modules/playwright-core" ] || why="${why:+$why; }no playwright-core (npm ci --prefix clients/web/test)"
if [ -n "$why" ]; then
  echo "# browser part skipped: $why (scripts/setup.sh --test installs these)"
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ] || exit 1
  exit 77
fi
# face-api's demo photograph with three people, and one of another person for verification.
photo= faces= other=
if [ -n "$faceapi" ]; then photo=$faceapi/demo/sample1.jpg faces=3 other=$faceapi/demo/sample2.jpg; fi
rm -rf "$OUT"
mkdir -p "$OUT"
SALIENT_URL=$base SALIENT_KEYED_URL=$keyed SALIENT_TEST_KEY=$key XRAY="$SRCDIR/tests/data/phantom_00000.png" \
  PHOTO="$photo" FACES="$faces" PHOTO2="$other" OUT="$OUT" CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" \
  node "$SRCDIR/clients/web/test/web.test.mjs" >"$tmp/browser.log" 2>&1
rc=$?
sed 's/^/  /' "$tmp/browser.log"
if [ $rc -eq 0 ]; then ok "browser: $(tail -n 1 "$tmp/browser.log")"; else bad "browser: $(tail -n 1 "$tmp/browser.log")"; fi
n=$(ls "$OUT"/*.png 2>/dev/null | wc -l)
[ "$n" -ge 3 ] && ok "screenshots in $OUT ($n)" || bad "screenshots in $OUT ($n)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
