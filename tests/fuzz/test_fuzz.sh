#!/usr/bin/env bash
# test_fuzz.sh (make check): every fuzzer in tests/fuzz replays its committed corpus and then runs
# FUZZ_SECONDS (default 30) on a throwaway copy of it; any crash, leak, timeout or sanitizer
# report fails. Skips (77) only when configure found no clang that can build the fuzzers.
set -u
srcdir=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d "${TMPDIR:-/tmp}/salient-fuzz-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$srcdir/tests/fuzz/run.sh" --seconds "${FUZZ_SECONDS:-30}" --work "$work" --builddir "$PWD"
rc=$?
if [ $rc -eq 1 ]; then
  # Keep what failed for the log reader: the work folder goes with the trap.
  mkdir -p tests/fuzz/failed && cp -r "$work"/. tests/fuzz/failed/ &&
    echo "test_fuzz: failing inputs and logs copied to $PWD/tests/fuzz/failed"
fi
exit $rc
