#!/bin/sh
# The faces model's attention maps against face-api's tensors under Node (tfjs wasm): layer maps and CAMs of the expression and age/gender nets on face-api's own aligned crops, and model randomisation; see parity_faceapi_attention.js. Skips (77) without Node or the packages scripts/fetch-faceapi.sh --node installs.
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed (scripts/setup.sh --test installs it)"; exit 77; }
exec node "$SALIENT_SRCDIR/tests/parity/parity_faceapi_attention.js"
