#!/bin/sh
# Open Inference Protocol v2 (KServe): images as one BYTES input, probabilities and logits back.
#   clients/curl/v2-infer.sh MODEL IMAGE [IMAGE...]
#   clients/curl/v2-infer.sh covid-resnet-demo a.png b.png
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODEL IMAGE [IMAGE...]" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
model=$1
shift
n=$#
{ printf '{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [%d], "data": [' "$n"
  sep=
  for f in "$@"; do printf '%s"' "$sep"; base64 -w0 "$f"; printf '"'; sep=', '; done
  printf ']}]}'; } |
  curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
    -H 'Content-Type: application/json' --data-binary @- "$url/v2/models/$model/infer"
echo
