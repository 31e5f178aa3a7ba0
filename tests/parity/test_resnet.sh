#!/bin/sh
# resnet parity against PyTorch (ResNet-18/50 COVID classifiers, one-channel sigmoid) and its load errors
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_resnet.py"
