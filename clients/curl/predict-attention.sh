#!/bin/sh
# Ask for attention overlays and write each one as a PNG: one per layer the model reports
# (attention/<layer>) and one class activation map per label (cam/<label>).
#   clients/curl/predict-attention.sh MODEL IMAGE OUTDIR [LABEL...]
#   clients/curl/predict-attention.sh chexnet-demo xray.png /tmp/overlays Effusion Cardiomegaly
# Without labels the CAM is of the best label. Needs jq.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 MODEL IMAGE OUTDIR [LABEL...]" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
model=$1 image=$2 out=$3
shift 3
labels=$(jq -cn '$ARGS.positional' --args "$@")
mkdir -p "$out"
answer=$out/answer.json
{ printf '{"image": "'; base64 -w0 "$image"
  printf '", "parameters": {"top_k": 3, "attention": "png"'
  [ $# -gt 0 ] && printf ', "cam_labels": %s' "$labels"
  printf '}}'; } |
  curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
    -H 'Content-Type: application/json' --data-binary @- -o "$answer" "$url/v1/models/$model:predict" ||
  { cat "$answer" >&2; echo >&2; exit 1; }
jq -r '.predictions[0].labels[] | "\(.label)\t\(.score)"' "$answer"
jq -r '.predictions[0].attention.layers[]? | "layer \(.name) \(.grid[0])x\(.grid[1]) weight \(.weight)"' "$answer"
jq -r '.predictions[0].attention.overlays[] | .of' "$answer" | while read -r of; do
  file=$out/$(printf '%s' "$of" | tr '/' '_' | tr -c 'A-Za-z0-9_.-' '_').png
  jq -r --arg of "$of" '.predictions[0].attention.overlays[] | select(.of == $of) | .png' "$answer" |
    base64 -d >"$file"
  echo "wrote $file ($of)"
done
