#!/bin/sh
# Face verification: two photos, one face each -> the descriptor distance and whether it is the
# same person (under the faces model's verify_threshold).
#   clients/curl/verify.sh A.jpg B.jpg
set -eu
[ $# -eq 2 ] || { echo "usage: $0 IMAGE_A IMAGE_B" >&2; exit 2; }
url=${SALIENT_URL:-http://localhost:8080}
curl -sS --fail-with-body ${SALIENT_API_KEY:+-H "Authorization: Bearer $SALIENT_API_KEY"} \
  -F image=@"$1" -F image=@"$2" "$url/v1/faces:verify"
echo
