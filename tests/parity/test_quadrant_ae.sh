#!/bin/sh
# quadrant_ae against PyTorch and scikit-learn: see parity_quadrant_ae.py
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_quadrant_ae.py"
