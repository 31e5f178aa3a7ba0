#!/bin/sh
# List the models salientd serves, with their labels, input size and whether they are demo weights.
#   clients/curl/models.sh
# Environment: SALIENT_URL (default http://localhost:8080), SALIENT_API_KEY (if the server has one).
set -eu
url=${SALIENT_URL:-http://localhost:8080}
curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
  "$url/v1/models"
echo
