#!/bin/sh
# Preprocessing parity: salient's decoding and preprocessing (salient-run --preprocess-only) against PIL + torchvision
srcdir=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
if ! /usr/bin/python3 -c 'import torch, torchvision, PIL' 2>/dev/null; then
    echo "skipped: needs Debian's python3-torch, python3-torchvision and python3-pil"
    exit 77
fi
exec /usr/bin/python3 "$srcdir/tests/parity/parity_preprocess.py"
