#!/bin/sh
# faceapi parity against face-api itself under Node (tfjs wasm): every network on fixed tensors, the face pipeline on face-api's six demo photographs with both detectors, verification; see parity_faceapi.js. Skips (77) without Node or the packages scripts/fetch-faceapi.sh --node installs.
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed (scripts/setup.sh --test installs it)"; exit 77; }
exec node "$SALIENT_SRCDIR/tests/parity/parity_faceapi.js"
