# models/: one file per model family, manifest parsing (knows the engine, not HTTP).
noinst_LTLIBRARIES += models/libmodels.la
models_libmodels_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
models_libmodels_la_LIBADD = engine/libengine.la $(JANSSON_LIBS)
models_libmodels_la_SOURCES = \
	models/manifest.c models/manifest.h \
	models/repository.c models/repository.h \
	models/model.c models/model.h models/families.h \
	models/preprocess.c models/preprocess.h \
	models/weights.c models/weights.h \
	models/backbone.c models/backbone.h \
	models/head.c models/head.h \
	models/densenet.c \
	models/resnet.c \
	models/swin.c \
	models/quadrant_ae.c \
	models/attention.c models/attention.h \
	models/faceapi.c models/faceapi.h \
	models/faceapi_nets.c models/faceapi_nets.h \
	models/faceapi_detect.c models/faceapi_detect.h \
	models/faceapi_image.c models/faceapi_image.h
EXTRA_DIST += models/README.md models/export
