#!/bin/sh
# Predict from a form upload, as a browser <form> or `curl -F` sends it; several images are one
# request (one prediction each, in order) and share a batch on the server.
#   clients/curl/predict-multipart.sh MODEL IMAGE [IMAGE...]
#   clients/curl/predict-multipart.sh chexnet-demo a.png b.jpg
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODEL IMAGE [IMAGE...]" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
model=$1
shift
n=$#
for f in "$@"; do set -- "$@" -F "image=@$f"; done
shift "$n"
curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
  "$@" -F 'parameters={"top_k": 3}' "$url/v1/models/$model:predict"
echo
