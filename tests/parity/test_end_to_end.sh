#!/bin/sh
# End-to-end parity from image files: salient-run --image (decode, preprocess, network) against PIL + torchvision + the PyTorch reference; see parity_end_to_end.py
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_end_to_end.py"
