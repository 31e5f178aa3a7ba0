# bench/: speed against peers measured in the same run; never a pass/fail test.
noinst_PROGRAMS += bench/bench_conv
bench_bench_conv_SOURCES = bench/bench_conv.c
bench_bench_conv_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS)
bench_bench_conv_LDADD = engine/libengine.la $(BLAS_LIBS) $(JANSSON_LIBS) $(OPENMP_CFLAGS) -lm
noinst_PROGRAMS += bench/bench_models
bench_bench_models_SOURCES = bench/bench_models.c
bench_bench_models_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS) $(JANSSON_CFLAGS)
bench_bench_models_LDADD = models/libmodels.la engine/libengine.la $(JANSSON_LIBS) $(BLAS_LIBS) $(OPENMP_CFLAGS) -lm
EXTRA_DIST += bench/README.md bench/run_models.sh bench/models.py bench/ort_bench.js bench/report.py bench/layers.py \
	bench/package.json bench/package-lock.json
noinst_PROGRAMS += bench/bench_attention
bench_bench_attention_SOURCES = bench/bench_attention.c
bench_bench_attention_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
# server/decode_image for a face model's --image
bench_bench_attention_LDADD = $(SERVER_LIBS)
# bench_faces.js: the face pipeline against face-api (Node, tfjs wasm) in the same run.
EXTRA_DIST += bench/bench_faces.js
# soak.py: minutes of mixed load on salientd, every answer checked (bench/README.md).
EXTRA_DIST += bench/soak.py
