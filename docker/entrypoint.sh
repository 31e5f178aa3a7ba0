#!/bin/bash
# The container's entry point. Each salientd setting can come from the environment:
# SALIENT_<NAME>=value becomes --<name> value (SALIENT_MAX_BATCH_SIZE=16 -> --max-batch-size 16);
# the names are read from `salientd --help`, so other SALIENT_* variables are left alone. The
# arguments given to `docker run` follow, so they win. SALIENT_API_KEY stays in the environment,
# where salientd reads it itself (a key on the command line would show in `ps`).
# The model repository: SALIENT_MODEL_REPO if set, else /models when models are mounted there,
# else the demo models built into the image.
set -euo pipefail
salientd=/usr/local/bin/salientd
if [ -z "${SALIENT_MODEL_REPO:-}" ]; then
  if compgen -G '/models/*/manifest.json' >/dev/null; then
    SALIENT_MODEL_REPO=/models
  else
    SALIENT_MODEL_REPO=/opt/salient/model-repo
  fi
  echo "salient-entrypoint: model repository $SALIENT_MODEL_REPO" >&2
fi
export SALIENT_MODEL_REPO
flags=()
for name in $("$salientd" --help | sed -n 's/^  --\([a-z-]*\) .*/\1/p'); do
  case $name in
    api-key | help | version) continue ;;
  esac
  var=SALIENT_${name//-/_}
  var=${var^^}
  if [ -n "${!var+set}" ]; then
    flags+=("--$name" "${!var}")
  fi
done
exec "$salientd" "${flags[@]}" "$@"
