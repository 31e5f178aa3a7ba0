#!/bin/sh
# Swin (swin_t + SwinCheX head, swin_t + linear head, a small config) against torchvision; see parity_swin.py.
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_swin.py"
