#!/bin/sh
# the faces model over HTTP: v1 predict (raw, JSON, multipart, parameters), v2 BYTES output, /v1/faces:verify
[ -x /usr/bin/python3 ] || exit 77
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/integration/test_faces.py"
