# tools/: command-line programs over models/ and engine/ directly (no HTTP).
bin_PROGRAMS += tools/salient-run
tools_salient_run_SOURCES = tools/salient_run.c tools/cli.c tools/cli.h server/decode_image.c server/decode_image.h
tools_salient_run_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS) $(PNG_CFLAGS)
tools_salient_run_LDADD = models/libmodels.la engine/libengine.la $(JANSSON_LIBS) $(TURBOJPEG_LIBS) $(PNG_LIBS) $(BLAS_LIBS) $(OPENMP_CFLAGS) -lm
EXTRA_DIST += tools/README.md
# salient-faces renders faces with the server's own code (server/faces.c), so it links libserver.
bin_PROGRAMS += tools/salient-faces
tools_salient_faces_SOURCES = tools/salient_faces.c tools/cli.c tools/cli.h
tools_salient_faces_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS) $(PNG_CFLAGS)
tools_salient_faces_LDADD = $(SERVER_LIBS)
