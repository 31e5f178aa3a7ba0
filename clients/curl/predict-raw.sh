#!/bin/sh
# Predict from a raw image body (no JSON, no base64); parameters go in the query string.
#   clients/curl/predict-raw.sh MODEL IMAGE [TOP_K]
#   clients/curl/predict-raw.sh covid-resnet-demo xray.jpg
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODEL IMAGE [TOP_K]" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
model=$1 image=$2 top_k=${3:-5}
case $image in
  *.png | *.PNG) type=image/png ;;
  *) type=image/jpeg ;;
esac
curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
  -H "Content-Type: $type" --data-binary @"$image" "$url/v1/models/$model:predict?top_k=$top_k"
echo
