#!/usr/bin/env bash
# test-sanitizers.sh: build salient with sanitizers in a build directory of its own and run its
# tests there; every test goes through tests/sanitizers/check-reports.sh, so a report from any
# process (the test, salientd, salient-run, salient-faces) fails it.
#
#   scripts/test-sanitizers.sh asan   # ASan + UBSan + LeakSanitizer, build-asan/, make check but test_docker.sh
#   scripts/test-sanitizers.sh tsan   # ThreadSanitizer, build-tsan/, the threaded tests only
#
# Needs what scripts/setup.sh --test installs (run it, or scripts/test.sh, first). Ends with one
# line "<suite>: N passed, N failed, N skipped" and exits non-zero if any test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-asan}
case "$suite" in
  # Everything but test_docker.sh, which tests the container image: that builds salientd
  # from the sources inside the image, uninstrumented, so under ASan it would only cost time;
  # and tests/fuzz, whose harnesses are clang ASan+UBSan builds of their own already (the
  # normal suite runs them; FUZZ_CC=false below keeps this build from making them again).
  asan) dir=build-asan flag=--enable-sanitizers tests=all-but-docker ;;
  # The threaded code: the worker pool and the ops that split work over it, the batcher and
  # workers behind salientd (32 clients, a full queue, timeouts, SIGTERM mid-flight), unload /
  # load / reload under load. The rest of make check runs one thread at a time and would add
  # hours under TSan's slowdown, not coverage.
  tsan) dir=build-tsan flag=--enable-tsan
    tests="tests/unit/test_pool tests/unit/test_conv tests/unit/test_gemm tests/unit/test_winograd
      tests/integration/test_salientd.sh tests/integration/test_concurrency.sh tests/integration/test_api.sh" ;;
  *) echo "usage: $0 [asan|tsan]" >&2; exit 2 ;;
esac
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$dir"
if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/config.status" ]; then
  (cd "$dir" && ../configure --enable-werror "$flag" FUZZ_CC=false >/dev/null)
fi
make -C "$dir" -j"$(nproc)" >/dev/null
make -C "$dir" -j"$(nproc)" check TESTS= >/dev/null
if [ "$tests" = all-but-docker ]; then
  tests=$(printf 'print-tests:\n\t@echo $(TESTS)\n' | make -C "$dir" -s -f Makefile -f - print-tests |
    tr ' ' '\n' | grep -v -e '^tests/integration/test_docker\.sh$' -e '^tests/fuzz/')
fi
rm -f "$dir/test-suite.log" # a build that fails below must not leave the last run's counts
# The faces tests look for face-api's weights in the build directory (then build/).
[ -e "$dir/faceapi" ] || [ ! -d build/faceapi ] || ln -s ../build/faceapi "$dir/faceapi"
# Model loading under ASan is 3-10x slower than in build/: the tests' guard against a salientd
# that never starts (120 s unless set) waits longer. It is a hang guard, not a timing check.
export SALIENT_START_TIMEOUT=600
if [ "$suite" = tsan ]; then
  # OpenBLAS's own threads are uninstrumented: TSan cannot see their synchronisation and would
  # report races inside libopenblas. The engine runs sgemm single-threaded anyway
  # (engine/ctx.c) and splits work over its own pool, which TSan does see; this also keeps
  # OpenBLAS from starting its idle thread pool at load. (OpenMP is used only with
  # SALIENT_OPENMP set, which no test here sets.)
  export OPENBLAS_NUM_THREADS=1
  # TSan runs our code 5-15x slower: salientd can take minutes to load a model with a batch of
  # 40. The tests run one at a time so that two instrumented servers do not share the cores.
  export SALIENT_START_TIMEOUT=900
  jobs=1
  export SALIENT_REQUEST_TIMEOUT=900 # a reload under load takes minutes (test_api.py)
fi
jobs=${jobs:-$(nproc)}
status=0
start=$SECONDS
make -C "$dir" --no-print-directory -s -j"$jobs" check TESTS="$(echo $tests)" || status=$?
if [ "$status" -ne 0 ]; then
  cat "$dir/test-suite.log" 2>/dev/null || true
fi
count() { local n; n=$(sed -n "s/^# $1: *\([0-9]*\)/\1/p" "$dir/test-suite.log" 2>/dev/null | head -n 1); echo "${n:-0}"; }
echo "$suite: $(count PASS) passed, $(( $(count FAIL) + $(count ERROR) + $(count XPASS) )) failed, $(count SKIP) skipped ($((SECONDS - start)) s)"
exit "$status"
