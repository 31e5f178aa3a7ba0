# tools/: command-line programs over models/ and engine/ directly (no HTTP).
bin_PROGRAMS += tools/salient-run
tools_salient_run_SOURCES = tools/salient_run.c server/decode_image.c server/decode_image.h
tools_salient_run_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS) $(PNG_CFLAGS)
tools_salient_run_LDADD = models/libmodels.la engine/libengine.la $(JANSSON_LIBS) $(TURBOJPEG_LIBS) $(PNG_LIBS) $(BLAS_LIBS) $(OPENMP_CFLAGS) -lm
EXTRA_DIST += tools/README.md
