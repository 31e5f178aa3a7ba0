# tests/sanitizers/: in a sanitizer build (configure --enable-sanitizers / --enable-tsan) every
# test runs through check-reports.sh; elsewhere LOG_COMPILER is empty and tests run as they are.
LOG_COMPILER = $(SANITIZER_LOG_COMPILER)
EXTRA_DIST += tests/sanitizers/README.md tests/sanitizers/check-reports.sh \
	tests/sanitizers/lsan.supp tests/sanitizers/tsan.supp
