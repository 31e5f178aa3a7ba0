# tests/fuzz/: libFuzzer harnesses for every parser salientd exposes, built with $(FUZZ_CC)
# (clang) under ASan + UBSan from the project's own sources (the gcc-built libraries carry no
# coverage instrumentation). The build is tests/fuzz/fuzz.mk, a plain GNU make file run from
# here: it compiles engine/, models/ and server/ once into an archive and links one fuzzer per
# target against it. `make check` builds them (check_DATA) and runs tests/fuzz/test_fuzz.sh;
# `make fuzz FUZZ_SECONDS=3600 [FUZZ_TARGETS=base64]` is the long run (tests/fuzz/README.md).
FUZZ_TARGETS_ALL = base64 multipart request_json decode_image safetensors tfjs_manifest manifest
FUZZ_MAKE = $(MAKE) -f $(srcdir)/tests/fuzz/fuzz.mk srcdir='$(srcdir)' FUZZ_CC='$(FUZZ_CC)' \
	TARGETS='$(FUZZ_TARGETS_ALL)' \
	LIB_SOURCES='$(engine_libengine_la_SOURCES) $(models_libmodels_la_SOURCES) $(server_libserver_la_SOURCES)' \
	GEN_SOURCES='$(nodist_server_libserver_la_SOURCES)' \
	DEP_CFLAGS='$(MHD_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS) $(PNG_CFLAGS) $(BLAS_CFLAGS)' \
	DEP_LIBS='$(MHD_LIBS) $(JANSSON_LIBS) $(TURBOJPEG_LIBS) $(PNG_LIBS) $(BLAS_LIBS) -lm -lpthread'

# Built before the tests run; without a fuzzing clang it says so and test_fuzz.sh skips.
check_DATA = fuzz-build
.PHONY: fuzz-build fuzz fuzz-clean
fuzz-build: $(BUILT_SOURCES)
	+@if test "$(FUZZ_OK)" = yes; then $(FUZZ_MAKE); \
	else echo "fuzz: '$(FUZZ_CC)' cannot build libFuzzer harnesses (see config.log): not building tests/fuzz"; fi

# The long run: every target (or FUZZ_TARGETS) for FUZZ_SECONDS each, corpus kept in tests/fuzz/work/.
FUZZ_SECONDS = 600
fuzz: fuzz-build
	$(srcdir)/tests/fuzz/run.sh --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf tests/fuzz/obj tests/fuzz/libfuzz.a tests/fuzz/work tests/fuzz/failed
	rm -f tests/fuzz/fuzz_base64 tests/fuzz/fuzz_multipart tests/fuzz/fuzz_request_json tests/fuzz/fuzz_decode_image tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_tfjs_manifest tests/fuzz/fuzz_manifest
clean-local: fuzz-clean

FUZZ_TESTS = tests/fuzz/test_fuzz.sh
TESTS += $(FUZZ_TESTS)
EXTRA_DIST += $(FUZZ_TESTS) tests/fuzz/README.md tests/fuzz/fuzz.mk tests/fuzz/run.sh tests/fuzz/make_seeds.py \
	tests/fuzz/fuzz_common.c tests/fuzz/fuzz_common.h \
	tests/fuzz/fuzz_base64.c tests/fuzz/fuzz_multipart.c tests/fuzz/fuzz_request_json.c tests/fuzz/fuzz_decode_image.c \
	tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_tfjs_manifest.c tests/fuzz/fuzz_manifest.c \
	tests/fuzz/corpus tests/fuzz/dict
