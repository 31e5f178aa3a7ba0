#!/usr/bin/env bash
# bench_server.sh: salientd under load on loopback (wrk), next to the engine alone on the same
# model in the same run. Prints markdown tables (and writes them to --out).
#
#   bench/bench_server.sh [--build DIR] [--repo DIR] [--model NAME]... [--duration S]
#                         [--clients "1 8 32"] [--size PX] [--out FILE]
#
# For each model: salient-run times the forward pass alone (preprocessed tensors in, batches of
# 8 and of 1), then salientd serves the model alone twice, batching on (max batch 8) and off
# (--max-batch-size 1), and wrk posts one phantom PNG of --size pixels square as a raw body
# (Content-Type: image/png) from 1, 8 and 32 connections, each for --duration seconds after a
# warm-up. Reported per run: answers/s (2xx only), wrk's p50/p99 latency, the mean batch size
# (inference_count / execution_count between two /metrics scrapes), decode+preprocess ms per
# image and how busy the model's worker was (compute time / wall time), both from /metrics,
# salientd's CPU time per image (/proc utime + stime over the run), and two ratios against the
# engine at batch 8: answers/s over its images/s, and its CPU time per image over the server's
# (this one hardly depends on how much of a shared machine each got). The engine is timed
# before, between and after the two server runs; the median of the three is the peer (the three
# are printed). Loopback only; every loop is bounded by --duration.
#
# Needs wrk (Debian's package; scripts/setup.sh --bench) and /usr/bin/python3 with numpy and
# PIL for the phantom (else tests/data/api-docs/xray.png, 256x256, is used). Never pass/fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=$src/build
repo=
models=()
duration=20
clients="1 8 32"
size=1024
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --model) models+=("$2"); shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_server: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
repo=${repo:-$build/model-repo}
[ ${#models[@]} -gt 0 ] || models=(chexnet-demo)
salientd=$build/server/salientd
run=$build/tools/salient-run
for f in "$salientd" "$run"; do
  [ -x "$f" ] || { echo "bench_server: $f is not built (make -C $build)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench_server: needs wrk: apt-get install wrk (or scripts/setup.sh --bench)" >&2; exit 2; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 143' INT TERM
threads=$(nproc)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The image every request sends.
image=$tmp/ph/phantom_00000.png
if ! /usr/bin/python3 "$src/models/export/phantoms.py" --n 1 --seed 5 --size "$size" --out "$tmp/ph" >/dev/null 2>&1; then
  image=$src/tests/data/api-docs/xray.png
  size="256 (tests/data/api-docs/xray.png; phantoms.py did not run)"
fi
cat >"$tmp/post.lua" <<'LUA'
-- One raw PNG body per request; done() prints the run as one JSON line.
local f = assert(io.open(os.getenv("BENCH_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
LUA

# ---- the engine alone ------------------------------------------------------------------------

# "images/s CPU-ms/image" of the forward pass at a batch size: salient-run on 8 and on N
# preprocessed images (N = 40 at batch 8, 24 at batch 1), so loading the model and writing
# the output cancel out. Of two runs each, the faster one's wall and CPU (user + sys) time.
engine_rate() { # model_dir batch
  local n t big w8 c8 wn cn
  big=$([ "$2" = 1 ] && echo 24 || echo 40)
  for n in 8 "$big"; do
    local best= cpu=
    for _ in 1 2; do
      t=$( { /usr/bin/time -f '%e %U %S' "$run" --model "$1" --input "$tmp/in$n.safetensors" --output "$tmp/out.safetensors" \
               --threads "$threads" --max-batch 8 --batch "$2" --quiet >/dev/null; } 2>&1 | tail -n 1)
      if [ -z "$best" ] || awk -v a="$best" -v b="${t%% *}" 'BEGIN { exit !(b < a) }'; then
        best=${t%% *}
        cpu=$(echo "$t" | awk '{ print $2 + $3 }')
      fi
    done
    if [ "$n" = 8 ]; then w8=$best c8=$cpu; else wn=$best cn=$cpu; fi
  done
  awk -v a="$w8" -v b="$wn" -v ca="$c8" -v cb="$cn" -v n="$big" \
    'BEGIN { d = b - a; if (d <= 0) printf "nan nan"; else printf "%.1f %.1f", (n - 8) / d, 1000 * (cb - ca) / (n - 8) }'
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
# The three runs' column k ("rate cpu" pairs), and the pair whose rate is the median.
col() { local k=$1; shift; printf '%s\n' "$@" | cut -d' ' -f"$k" | tr '\n' ' ' | sed 's/ $//'; }
median_pair() { local m; m=$(median3 $(col 1 "$@")); printf '%s\n' "$@" | awk -v m="$m" '$1 == m { print; exit }'; }

# ---- the server ------------------------------------------------------------------------------

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() { # scrape-file family model
  awk -v k="$2{model=\"$3\"}" '$1 == k { print $2 }' "$1"
}

start_server() { # model flags...
  local m=$1
  shift
  rm -rf "$tmp/repo" && mkdir -p "$tmp/repo" && ln -s "$repo/$m" "$tmp/repo/$m"
  "$salientd" --port 0 --host 127.0.0.1 --model-repo "$tmp/repo" "$@" 2>"$tmp/log" &
  pid=$!
  port=
  for _ in $(seq 1 1200); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$tmp/log" >&2; echo "bench_server: salientd did not start" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

rows=$tmp/rows
: >"$rows"
serve() { # model mode flags...
  local m=$1 mode=$2 c
  shift 2
  start_server "$m" "$@"
  local url="http://127.0.0.1:$port/v1/models/$m:predict"
  # Warm-up: the first batches after a load are slow (memory touched for the first time).
  local n=0
  for _ in $(seq 1 60); do
    curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$image" "$url" | grep -q 200 && n=$((n + 1))
    [ "$n" -ge 3 ] && break
  done
  BENCH_IMAGE=$image wrk -t1 -c8 -d5s --timeout 60s -s "$tmp/post.lua" "$url" >/dev/null
  for c in $clients; do
    curl -s "http://127.0.0.1:$port/metrics" >"$tmp/m0"
    local cpu0 cpu1
    cpu0=$(cpu_ticks "$pid")
    BENCH_IMAGE=$image wrk -t1 -c"$c" -d"${duration}s" --timeout 60s -s "$tmp/post.lua" "$url" >"$tmp/wrk.out"
    cpu1=$(cpu_ticks "$pid")
    curl -s "http://127.0.0.1:$port/metrics" >"$tmp/m1"
    local j
    j=$(sed -n 's/^BENCH //p' "$tmp/wrk.out")
    [ -n "$j" ] || { cat "$tmp/wrk.out" >&2; exit 1; }
    local d=()
    for f in inference_count_total execution_count_total preprocess_duration_us_total compute_duration_us_total; do
      d+=($(( $(metric "$tmp/m1" "salient_model_$f" "$m") - $(metric "$tmp/m0" "salient_model_$f" "$m") )))
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$mode" "$c" "$j" "${d[0]}" "${d[1]}" "${d[2]}" "${d[3]}" \
      "$(awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1000 * t / hz }')" >>"$rows"
  done
  stop_server
}

engine_rows=$tmp/engine
: >"$engine_rows"
for m in "${models[@]}"; do
  [ -f "$repo/$m/manifest.json" ] || { echo "bench_server: no model '$m' in $repo" >&2; exit 2; }
  imgs=()
  for i in $(seq 1 40); do imgs+=(--image "$image"); done
  for n in 8 24 40; do
    "$run" --model "$repo/$m" "${imgs[@]:0:$((2 * n))}" --preprocess-only --output "$tmp/in$n.safetensors" --quiet
  done
  e8=() e1=()
  e8+=("$(engine_rate "$repo/$m" 8)"); e1+=("$(engine_rate "$repo/$m" 1)")
  serve "$m" on
  e8+=("$(engine_rate "$repo/$m" 8)"); e1+=("$(engine_rate "$repo/$m" 1)")
  serve "$m" off --max-batch-size 1
  e8+=("$(engine_rate "$repo/$m" 8)"); e1+=("$(engine_rate "$repo/$m" 1)")
  printf '%s\t%s\t%s\t%s\t%s\n' "$m" "$(median_pair "${e8[@]}")" "$(col 1 "${e8[@]}")" \
    "$(median_pair "${e1[@]}")" "$(col 1 "${e1[@]}")" >>"$engine_rows"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ------------------------------------------------------------------------------

report() {
  echo "${OMP_WAIT_POLICY:+OMP_WAIT_POLICY=$OMP_WAIT_POLICY }bench/bench_server.sh --duration $duration --clients \"$clients\" --size ${size%% *} $(printf -- '--model %s ' "${models[@]}")"
  echo
  echo "$(date -u +%Y-%m-%d), $threads cores ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1)), salientd $("$salientd" --version | cut -d' ' -f2):"
  echo "1 worker x $threads engine threads, 2 HTTP threads; wrk 1 thread; image ${size} px PNG ($(stat -c %s "$image") bytes), raw body;"
  echo "OMP_WAIT_POLICY ${OMP_WAIT_POLICY:-unset (the libgomp default: spin a while, then sleep)}."
  echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after."
  echo
  echo "Engine alone (salient-run on preprocessed tensors, $threads threads): images/s, the median of 3 runs (the 3 runs),"
  echo "and the CPU time per image of that run:"
  echo
  echo "| model | batch 8 images/s | batch 8 CPU ms/img | batch 1 images/s | batch 1 CPU ms/img |"
  echo "|---|---|---|---|---|"
  while IFS=$'\t' read -r m b8 b8all b1 b1all; do
    echo "| $m | ${b8%% *} ($b8all) | ${b8##* } | ${b1%% *} ($b1all) | ${b1##* } |"
  done <"$engine_rows"
  echo
  echo "salientd, POST /v1/models/{m}:predict:"
  echo
  echo "| model | batching | clients | answers/s | p50 ms | p99 ms | mean batch | preprocess ms/img | worker busy | CPU ms/img | non-2xx | answers/s / engine b8 images/s | engine b8 CPU / server CPU per img |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r m mode c j inf exe pre comp cpu; do
    b8=$(awk -F'\t' -v m="$m" '$1 == m { print $2 }' "$engine_rows")
    /usr/bin/python3 -c '
import json, sys
m, mode, c, j, inf, exe, pre, comp, cpu, b8 = sys.argv[1:]
b8, b8cpu = (b8.split() + ["nan", "nan"])[:2]
w = json.loads(j)
s = w["duration_us"] / 1e6
bad = w["status"] + w["timeout"] + w["connect"] + w["read"] + w["write"]
ok = (w["requests"] - w["status"]) / s
inf, exe, pre, comp = int(inf), int(exe), int(pre), int(comp)
ratio = "%.2f" % (ok / float(b8)) if b8 != "nan" else "-"
cpu_img = float(cpu) / inf if inf else float("nan")
cratio = "%.2f" % (float(b8cpu) / cpu_img) if b8cpu != "nan" and inf else "-"
print("| %s | %s | %s | %.1f | %.0f | %.0f | %s | %s | %.0f%% | %.1f | %d | %s | %s |" % (
    m, "on (max 8)" if mode == "on" else "off (max 1)", c, ok, w["p50_us"] / 1e3, w["p99_us"] / 1e3,
    "%.2f" % (inf / exe) if exe else "-", "%.1f" % (pre / 1e3 / inf) if inf else "-",
    100.0 * comp / w["duration_us"], cpu_img, bad, ratio, cratio))
' "$m" "$mode" "$c" "$j" "$inf" "$exe" "$pre" "$comp" "$cpu" "$b8"
  done <"$rows"
}
if [ -n "$out" ]; then
  report | tee "$out"
else
  report
fi
