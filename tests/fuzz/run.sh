#!/usr/bin/env bash
# run.sh: replay the committed corpus through each fuzzer, then fuzz it for a while.
#   tests/fuzz/run.sh [--seconds N] [--work DIR] [--builddir DIR] [target ...]
# Targets: base64 multipart request_json decode_image safetensors tfjs_manifest manifest (default
# all). For each: every file of corpus/<target>/ (seeds and regress-* inputs) is run once, then
# the fuzzer runs N seconds (default 30) on a copy of the corpus in DIR/<target> (default
# <builddir>/tests/fuzz/work, kept between runs so the corpus grows there, never in the source
# tree), in one process (no -fork, no -jobs), with a 10 s per-input timeout and a 2 GiB RSS limit;
# ASan reports leaks. A crash, leak, timeout, OOM or sanitizer report fails the target and leaves
# the input in DIR as crash-*/leak-*/timeout-*/oom-*. Per target it prints executions, cov: and
# ft: from libFuzzer's final stats. Exit status: 0 all clean, 1 a target failed, 77 fuzzers not built.
set -u
here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-30}
builddir=$PWD
work=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --builddir) builddir=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(base64 multipart request_json decode_image safetensors tfjs_manifest manifest)
work=${work:-$builddir/tests/fuzz/work}
case $seconds in ''|*[!0-9]*) echo "run.sh: --seconds takes a whole number" >&2; exit 2 ;; esac

for t in "${targets[@]}"; do
  if [ ! -x "$builddir/tests/fuzz/fuzz_$t" ]; then
    if [ -d "$here/corpus/$t" ]; then
      echo "run.sh: $builddir/tests/fuzz/fuzz_$t is not built: configure found no clang that links" \
        "-fsanitize=fuzzer,address,undefined with OpenMP (FUZZ_CC; scripts/setup.sh --test installs" \
        "clang, libclang-rt-14-dev and libomp-14-dev), or make has not built it yet (make fuzz-build)" >&2
      exit 77
    fi
    echo "run.sh: no target '$t'" >&2
    exit 2
  fi
done

# Sanitizer settings: every report is fatal, leaks included; symbolized stacks when possible.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
mkdir -p "$work"
# The harnesses' scratch files (tfjs shards) go to memory when there is a /dev/shm.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

failed=()
for t in "${targets[@]}"; do
  bin=$builddir/tests/fuzz/fuzz_$t
  seeds=$here/corpus/$t
  dir=$work/$t
  log=$work/$t.log
  mkdir -p "$dir"
  cp -n "$seeds"/* "$dir"/ 2>/dev/null
  chmod u+w "$dir"/* 2>/dev/null
  # libFuzzer takes one dictionary: JSON's syntax plus the target's own words.
  dict=$work/$t.dict
  : >"$dict"
  case $t in request_json|manifest|safetensors|tfjs_manifest) cat "$here/dict/json.dict" >>"$dict" ;; esac
  [ ! -f "$here/dict/$t.dict" ] || cat "$here/dict/$t.dict" >>"$dict"
  opts=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/$t-")

  # 1. Every committed input once (a regression must stay fixed).
  if ! "$bin" "${opts[@]}" "$seeds"/* >"$work/$t.replay.log" 2>&1; then
    echo "FAIL $t: a committed input fails (corpus/$t); log: $work/$t.replay.log"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|==fuzz==)|Running: " "$work/$t.replay.log" | tail -5
    failed+=("$t")
    continue
  fi
  # 2. Fuzz for the time given.
  start=$(date +%s)
  "$bin" "${opts[@]}" -dict="$dict" -max_total_time="$seconds" -print_final_stats=1 "$dir" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")
  artifacts=$(ls "$work/$t-"* 2>/dev/null | grep -E -- "-(crash|leak|timeout|oom|slow-unit)-" || true)
  if [ $rc -ne 0 ] || [ -n "$artifacts" ]; then
    echo "FAIL $t: libFuzzer exit $rc after ${took}s; log: $log"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|==fuzz==)|runtime error|^artifact_prefix|Test unit written" "$log" | head -8
    failed+=("$t")
  else
    echo "ok   $t: ${execs:-?} executions in ${took}s, cov: ${cov:-?} ft: ${ft:-?} corpus: ${corp:-?}"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run.sh: failed: ${failed[*]} (inputs in $work)"
  exit 1
fi
exit 0
