#!/bin/sh
# check-reports.sh: automake's LOG_COMPILER in a sanitizer build (configure --enable-sanitizers
# or --enable-tsan). Runs one test with the sanitizers' options set and every instrumented process
# it starts (the test program, salientd, salient-run, salient-faces, Check's forked children)
# writing its reports to a file of its own; any report fails the test, whatever the test's own
# exit status was. That is how a salientd that a Python test kills, or one that leaks at exit
# after SIGTERM, still fails the run: its report is a file here, not a line in a log nobody reads.
#
#     check-reports.sh TEST [ARGS...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
reports=$(mktemp -d "${TMPDIR:-/tmp}/salient-san.XXXXXX") || exit 99
out=$reports.output
trap 'rm -rf "$reports" "$out"' EXIT
# Ours first, so that options already in the environment (set by hand) win.
# halt_on_error / -fno-sanitize-recover: the first report ends the process, with a non-zero
# status; log_path: one file per process, <reports>/<tool>.<pid>.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:print_stacktrace=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp:log_path=$reports/tsan${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
# The test's own output is kept too: GCC's libubsan ignores log_path next to libasan and
# reports on stderr, which reaches the test's output when the test shows its children's stderr.
"$@" >"$out" 2>&1
rc=$?
cat "$out"
found=0
if grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer' "$out"; then
  found=1
  echo "== a sanitizer report in the output above"
fi
for f in "$reports"/*; do
  [ -e "$f" ] || continue
  found=$((found + 1))
  echo "== sanitizer report: $(basename "$f")"
  cat "$f"
done
if [ "$found" -gt 0 ]; then
  echo "FAIL $found sanitizer report(s) from the processes of $1 (its own exit status: $rc)"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] && rc=1
fi
exit "$rc"
