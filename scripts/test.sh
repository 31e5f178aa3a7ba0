#!/usr/bin/env bash
# test.sh: the README's second command. Set up and build as serve.sh does, then run the whole
# test suite (unit tests against PyTorch-made fixtures, then a real salientd on loopback), then
# the same suite again under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer
# (scripts/test-sanitizers.sh asan, in build-asan/) and the threaded tests under ThreadSanitizer
# (tsan, in build-tsan/). SALIENT_SANITIZERS lists the sanitizer
# suites to run after the normal one: "asan tsan" unless set, e.g. "asan", or "" for none.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/prepare-repo.sh
status=0
# Build the test programs quietly first, so the output below is the tests' own.
make -C build -j"$(nproc)" check TESTS= >/dev/null
make -C build --no-print-directory -s -j"$(nproc)" check || status=$?
# Show what each test printed (worst errors per op, skipped cases), and the log of anything that failed.
for log in $(find build/tests -name '*.log' ! -name 'test-suite.log' | sort); do
  if grep -q '^worst' "$log"; then
    echo "== ${log#build/}"; sed -n '/^worst/,$p' "$log"
  fi
  # tests/fuzz: executions and coverage per fuzz target.
  if grep -qE '^(ok   |FAIL )' "$log"; then
    echo "== ${log#build/}"; grep -E '^(ok   |FAIL )' "$log"
  fi
done
if [ "$status" -ne 0 ]; then
  cat build/test-suite.log 2>/dev/null || true
fi
# One count line per suite, from automake's test harness, and the total last.
count() { local n; n=$(sed -n "s/^# $2: *\([0-9]*\)/\1/p" "$1/test-suite.log" 2>/dev/null | head -n 1); echo "${n:-0}"; }
pass=0 failed=0 skip=0 lines=()
tally() { # suite name, build dir, its exit status
  local p f s
  p=$(count "$2" PASS) s=$(count "$2" SKIP)
  f=$(( $(count "$2" FAIL) + $(count "$2" ERROR) + $(count "$2" XPASS) ))
  [ "$3" -eq 0 ] || [ "$f" -gt 0 ] || f=1 # it failed before any test did (a build error)
  pass=$((pass + p)) failed=$((failed + f)) skip=$((skip + s))
  lines+=("$1: $p passed, $f failed, $s skipped")
}
tally "make check" build "$status"
for suite in ${SALIENT_SANITIZERS-asan tsan}; do
  echo "== $suite: scripts/test-sanitizers.sh $suite"
  s=0
  scripts/test-sanitizers.sh "$suite" || s=$?
  [ "$s" -eq 0 ] || status=$s
  tally "$suite" "build-$suite" "$s"
done
printf '%s\n' "${lines[@]}"
echo "$pass passed, $failed failed, $skip skipped"
exit "$status"
