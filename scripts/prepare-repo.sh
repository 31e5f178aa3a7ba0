#!/usr/bin/env bash
# prepare-repo.sh: assemble the default model repository in build/model-repo.
# Each model is a folder with manifest.json and its weights (see docs/MODELS.md). Models are
# copied from models/repo/ in this tree; none ship yet: the model-family issues add the demo
# checkpoints and face-api's weights here.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/model-repo
mkdir -p "$out"
n=0
if [ -d models/repo ]; then
  for m in models/repo/*/; do
    [ -f "$m/manifest.json" ] || continue
    name=$(basename "$m")
    rm -rf "${out:?}/$name"
    cp -r "$m" "$out/$name"
    n=$((n + 1))
  done
fi
# faces: the committed manifest, face-api's weights next to it (scripts/fetch-faceapi.sh fetched them).
faceapi=${SALIENT_FACEAPI_DIR:-build/faceapi}/model
if [ -d "$out/faces" ]; then
  if [ -f "$faceapi/ssd_mobilenetv1_model-weights_manifest.json" ]; then
    cp "$faceapi"/*.json "$faceapi"/*.bin "$out/faces/"
  else
    rm -rf "${out:?}/faces"
    n=$((n - 1))
    echo "prepare-repo: faces skipped: no face-api weights in $faceapi (run scripts/fetch-faceapi.sh)" >&2
  fi
fi
echo "prepare-repo: $n model(s) in $out"
