#!/bin/sh
# densenet parity against PyTorch (CheXNet, torchxrayvision, small config) and its load errors
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_densenet.py"
