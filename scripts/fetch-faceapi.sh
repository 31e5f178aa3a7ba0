#!/usr/bin/env bash
# fetch-faceapi.sh: face-api's trained weights and demo photographs, from its npm package (MIT).
#   scripts/fetch-faceapi.sh          # npm pack @vladmandic/face-api@1.7.15; its model/*.json, model/*.bin
#                                     # and demo/*.jpg into build/faceapi/{model,demo}
#   scripts/fetch-faceapi.sh --node   # also the Node packages the parity test and bench run face-api
#                                     # with (face-api, @tensorflow/tfjs + tfjs-backend-wasm, jpeg-js)
#                                     # into build/faceapi/node/node_modules
# Idempotent: the tarball is kept in build/faceapi/ and nothing is fetched twice. Only the npm
# registry is used, only here: nothing is downloaded at run time. SALIENT_FACEAPI_DIR moves the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

FACEAPI=1.7.15
TFJS=4.22.0
JPEGJS=0.4.4
dir=${SALIENT_FACEAPI_DIR:-build/faceapi}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tgz="$dir/vladmandic-face-api-$FACEAPI.tgz"

# Node trusts only its own CA list unless told otherwise: let it use the system's too (where a
# site adds its own CA with update-ca-certificates, npm then reaches the registry through it).
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-faceapi: npm is not installed (scripts/setup.sh installs nodejs and npm)" >&2
  exit 1
fi

if [ ! -s "$tgz" ]; then
  echo "fetch-faceapi: npm pack @vladmandic/face-api@$FACEAPI"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@vladmandic/face-api@$FACEAPI" >/dev/null)
  mv "$tmp/vladmandic-face-api-$FACEAPI.tgz" "$tgz"
  rm -rf "$tmp"
fi

stamp="$dir/.extracted-$FACEAPI"
if [ ! -f "$stamp" ] || [ ! -f "$dir/model/ssd_mobilenetv1_model-weights_manifest.json" ]; then
  tmp=$(mktemp -d)
  tar -xzf "$tgz" -C "$tmp" package/model package/demo package/LICENSE
  rm -rf "$dir/model" "$dir/demo"
  mkdir -p "$dir/model" "$dir/demo"
  cp "$tmp"/package/model/*.json "$tmp"/package/model/*.bin "$dir/model/"
  cp "$tmp"/package/demo/*.jpg "$dir/demo/"
  cp "$tmp/package/LICENSE" "$dir/LICENSE"
  rm -rf "$tmp"
  touch "$stamp"
  echo "fetch-faceapi: $(ls "$dir/model" | wc -l) weight files in $dir/model, $(ls "$dir/demo" | wc -l) photographs in $dir/demo"
fi

if [ "${1:-}" = "--node" ]; then
  node_dir="$dir/node"
  want="face-api@$FACEAPI tfjs@$TFJS jpeg-js@$JPEGJS"
  if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "$want" ]; then
    echo "fetch-faceapi: npm install $want into $node_dir"
    mkdir -p "$node_dir"
    echo '{"name": "salient-faceapi-reference", "private": true}' >"$node_dir/package.json"
    # face-api from the tarball above (the same bytes the weights came from); pinned versions
    (cd "$node_dir" && npm install --silent --no-audit --no-fund --save-exact "$tgz" \
      "@tensorflow/tfjs@$TFJS" "@tensorflow/tfjs-backend-wasm@$TFJS" "jpeg-js@$JPEGJS")
    echo "$want" >"$node_dir/.installed"
  fi
fi
