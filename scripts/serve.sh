#!/usr/bin/env bash
# serve.sh: the README's first command. Set up, build, prepare the default model repository,
# then run salientd on port 8080 in the foreground (Ctrl-C stops it), with the demo frontend
# (clients/web) at http://localhost:8080/.
#   scripts/serve.sh [salientd flags...]     e.g. scripts/serve.sh --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/prepare-repo.sh
exec build/server/salientd --port "${PORT:-8080}" --model-repo build/model-repo --web-root clients/web "$@"
