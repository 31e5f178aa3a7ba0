# server/: salientd, everything a client touches. Everything but main.c is in a convenience
# library so the unit tests link the same objects the daemon runs.
noinst_LTLIBRARIES += server/libserver.la
server_libserver_la_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS) $(PNG_CFLAGS)
server_libserver_la_SOURCES = \
	server/options.c server/options.h \
	server/decode_image.c server/decode_image.h \
	server/base64.c server/base64.h \
	server/multipart.c server/multipart.h \
	server/http.c server/http.h \
	server/request.h server/routes.h \
	server/registry.c server/registry.h \
	server/batcher.c server/batcher.h \
	server/infer.c server/infer.h \
	server/overlay.c server/overlay.h \
	server/attention.c server/attention.h \
	server/faces.c server/faces.h \
	server/api_v1.c server/api_v2.c \
	server/metrics.c \
	server/openapi.c
server_libserver_la_SOURCES += server/static.c
nodist_server_libserver_la_SOURCES = server/openapi_data.c
BUILT_SOURCES += server/openapi_data.c
CLEANFILES += server/openapi_data.c
EXTRA_DIST += server/openapi.json

# The OpenAPI document, compiled in as one C string.
server/openapi_data.c: $(srcdir)/server/openapi.json
	$(AM_V_GEN)$(MKDIR_P) server && { \
	  echo '/* Generated from server/openapi.json by server/local.mk; do not edit. */'; \
	  echo 'const char srv_openapi_text[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $(srcdir)/server/openapi.json; \
	  echo ';'; } > $@-t && mv $@-t $@
SERVER_LIBS = server/libserver.la models/libmodels.la engine/libengine.la $(MHD_LIBS) $(JANSSON_LIBS) $(TURBOJPEG_LIBS) $(PNG_LIBS) $(BLAS_LIBS) $(OPENMP_CFLAGS) -lm -lpthread

bin_PROGRAMS += server/salientd
server_salientd_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS)
server_salientd_LDADD = $(SERVER_LIBS)
server_salientd_SOURCES = server/main.c
EXTRA_DIST += server/README.md
