#!/bin/sh
# Liveness and readiness, as a load balancer or kubelet asks (no API key needed).
#   clients/curl/health.sh
# Exits 0 when the server is ready, 22 when it answers 503 (starting, a model not loaded, draining).
set -eu
url=${SALIENT_URL:-http://localhost:8080}
curl -sS --fail-with-body "$url/v2/health/live"; echo
curl -sS --fail-with-body "$url/v2/health/ready"; echo
