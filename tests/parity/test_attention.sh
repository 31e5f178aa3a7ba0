#!/bin/sh
# attention maps against PyTorch (layer maps, exact and perturbation CAMs), model randomisation, pointing game
exec /usr/bin/python3 "$SALIENT_SRCDIR/tests/parity/parity_attention.py"
