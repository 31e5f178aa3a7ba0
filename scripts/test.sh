#!/usr/bin/env bash
# test.sh: the README's second command. Set up and build as serve.sh does, then run the whole
# test suite (unit tests against PyTorch-made fixtures, then a real salientd on loopback).
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
# One plain closing line for CI: counts from automake's test harness.
count() { sed -n "s/^# $1: *\([0-9]*\)/\1/p" build/test-suite.log 2>/dev/null | head -n 1; }
echo "$(count PASS) passed, $(( $(count FAIL) + $(count ERROR) + $(count XPASS) )) failed, $(count SKIP) skipped"
exit "$status"
