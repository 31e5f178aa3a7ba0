#!/bin/sh
# Predict from JSON: the image as base64, parameters beside it.
#   clients/curl/predict-json.sh MODEL IMAGE [TOP_K]
#   clients/curl/predict-json.sh chexnet-demo xray.png 3
# The body is streamed from a pipe, so a large image never lands on the command line.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODEL IMAGE [TOP_K]" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
model=$1 image=$2 top_k=${3:-5}
{ printf '{"image": "'; base64 -w0 "$image"; printf '", "parameters": {"top_k": %d}}' "$top_k"; } |
  curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
    -H 'Content-Type: application/json' --data-binary @- "$url/v1/models/$model:predict"
echo
