# fuzz.mk: builds the libFuzzer harnesses (GNU make; run by tests/fuzz/local.mk's fuzz-build, which
# passes srcdir, FUZZ_CC, TARGETS, LIB_SOURCES (.c and .h), GEN_SOURCES, DEP_CFLAGS and DEP_LIBS from automake
# and configure). Out of tree: objects in tests/fuzz/obj/ of the build directory.
#
# Every object is built with ASan + UBSan (UBSan fatal) and libFuzzer's coverage hooks
# (-fsanitize=fuzzer-no-link); the project's sources go into one archive, so a fuzzer links only
# the objects it needs. Dependencies are tracked with -MMD, so a changed header rebuilds.
OUT = tests/fuzz
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Warnings are errors in the harnesses only: the project's sources are kept warning-free under
# gcc (configure --enable-werror), and clang's opinion of gcc-tuned loops (-Wpass-failed: an
# "omp simd" it did not vectorise) is no reason to stop fuzzing.
FUZZ_CFLAGS = -std=c11 -g -O1 -fno-omit-frame-pointer -fopenmp $(SAN) -Wall -Wextra -Wno-pass-failed \
	-D_GNU_SOURCE -I$(srcdir) -I. $(DEP_CFLAGS)

LIB_OBJS = $(patsubst %.c,$(OUT)/obj/%.o,$(filter %.c,$(LIB_SOURCES))) $(patsubst %.c,$(OUT)/obj/gen/%.o,$(GEN_SOURCES))
COMMON_OBJ = $(OUT)/obj/tests/fuzz/fuzz_common.o
FUZZERS = $(TARGETS:%=$(OUT)/fuzz_%)

all: $(FUZZERS)

$(OUT)/obj/%.o: $(srcdir)/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# Generated sources (server/openapi_data.c) live in the build directory.
$(OUT)/obj/gen/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(OUT)/libfuzz.a: $(LIB_OBJS)
	@rm -f $@
	@echo "  AR       $@"
	@ar rcs $@ $^

$(OUT)/obj/tests/fuzz/%.o: $(srcdir)/tests/fuzz/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -MMD -MP -c $< -o $@

$(OUT)/fuzz_%: $(OUT)/obj/tests/fuzz/fuzz_%.o $(COMMON_OBJ) $(OUT)/libfuzz.a
	@echo "  FUZZLD   $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS)

.SECONDARY:
.PHONY: all
-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
