# engine/: tensors, arenas, threads, ops, checkpoint readers (knows nothing of HTTP or models).
noinst_LTLIBRARIES += engine/libengine.la
engine_libengine_la_CFLAGS = $(AM_CFLAGS) $(ENGINE_OPT_CFLAGS) $(BLAS_CFLAGS) $(JANSSON_CFLAGS)
engine_libengine_la_LIBADD = $(BLAS_LIBS) $(JANSSON_LIBS) $(OPENMP_CFLAGS) -lm
engine_libengine_la_SOURCES = \
	engine/error.c engine/error.h \
	engine/tensor.c engine/tensor.h \
	engine/arena.c engine/arena.h \
	engine/ctx.c engine/ctx.h \
	engine/profile.c engine/profile.h \
	engine/pool.c engine/pool.h \
	engine/gemm.c engine/gemm.h \
	engine/sgemm.c engine/sgemm.h \
	engine/activation.c engine/activation.h \
	engine/conv.c engine/conv.h \
	engine/winograd.c engine/winograd.h \
	engine/linear.c engine/linear.h \
	engine/pooling.c engine/pooling.h \
	engine/eltwise.c engine/eltwise.h \
	engine/pad.c engine/pad.h \
	engine/norm.c engine/norm.h \
	engine/swin.c engine/swin.h \
	engine/resize.c engine/resize.h \
	engine/safetensors.c engine/safetensors.h \
	engine/tfjs.c engine/tfjs.h
EXTRA_DIST += engine/README.md
