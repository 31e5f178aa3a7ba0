#!/bin/sh
# attention maps over HTTP: v1 maps and PNG overlays, v2 outputs, agreement with salient-run
[ -x /usr/bin/python3 ] || exit 77
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/integration/test_attention.py"
