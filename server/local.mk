# server/: salientd, everything a client touches.
bin_PROGRAMS += server/salientd
server_salientd_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS)
server_salientd_LDADD = models/libmodels.la engine/libengine.la $(MHD_LIBS) $(JANSSON_LIBS) $(BLAS_LIBS) $(OPENMP_CFLAGS) -lm
server_salientd_SOURCES = \
	server/main.c \
	server/options.c server/options.h \
	server/http.c server/http.h
EXTRA_DIST += server/README.md
