# lib.sh: what the shell integration tests share. Source it first thing:
#
#   . "$(dirname "$0")/lib.sh"
#
# It sets SALIENTD (the binary under test), SRCDIR (the source tree), tmp (a scratch folder
# removed at exit) and pids (processes killed at exit; a test adds its own cleanup with
# on_exit), and gives the check helpers: every check prints `ok   name` or `FAIL name`, and
# `finish` prints the closing "N passed, N failed" and exits non-zero on any failure.
# shellcheck shell=bash
set -u
SALIENTD=${SALIENTD:-server/salientd}
SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
pids=()
exit_hooks=()
on_exit() { exit_hooks+=("$1"); } # a command run at exit, before the servers are killed
_lib_cleanup() {
  local h p
  for h in "${exit_hooks[@]}"; do eval "$h"; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap _lib_cleanup EXIT

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect() { # name, want, got
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
check() { # name, command...: passes when the command succeeds
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

# start_salientd LOG FLAGS...: start salientd on a port the kernel picks, wait for its
# "listening on" line (a hang guard of SALIENT_START_TIMEOUT seconds, 120 unless set: the
# sanitizer builds start slowly); sets $port and $pid (also kept in pids). A server that dies or
# never listens ends the test with its log.
start_salientd() {
  local log=$1; shift
  "$SALIENTD" --port 0 --host 127.0.0.1 "$@" 2>"$log" &
  pid=$!
  pids+=("$pid")
  port=
  for _ in $(seq 1 $((${SALIENT_START_TIMEOUT:-120} * 20))); do  # 0.05 s steps
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  bad "salientd starts ($*)"; cat "$log"; finish
}

# add_faces_model REPO PHOTO: when face-api's weights and demo photographs have been fetched
# (scripts/fetch-faceapi.sh; SALIENT_FACEAPI_DIR, ./faceapi or the source tree's build/faceapi)
# and PHOTO (a file name in demo/) is there, put the faces model into REPO and set $faceapi to
# that folder; otherwise leave $faceapi empty.
add_faces_model() {
  local d
  faceapi=
  for d in "${SALIENT_FACEAPI_DIR:-}" "$PWD/faceapi" "$SRCDIR/build/faceapi"; do
    if [ -n "$d" ] && [ -f "$d/model/ssd_mobilenetv1_model-weights_manifest.json" ] && [ -f "$d/demo/$2" ]; then
      faceapi=$d
      mkdir -p "$1/faces"
      cp "$SRCDIR/models/repo/faces/manifest.json" "$1/faces/"
      ln -s "$d"/model/* "$1/faces/"
      return 0
    fi
  done
}
