#!/bin/sh
# Prometheus metrics: requests and failures by status, queue and compute time, batch sizes,
# queue depth. Scrape this path from Prometheus; here, the salient_ series without comments.
#   clients/curl/metrics.sh
set -eu
url=${SALIENT_URL:-http://localhost:8080}
curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
  "$url/metrics" | grep -v '^#'
