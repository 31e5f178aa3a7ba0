#!/bin/bash
# HEALTHCHECK: 0 when GET /v2/health/ready answers 200 (every model loaded, not draining).
# bash's /dev/tcp instead of curl keeps curl and its libraries out of the image.
port=${SALIENT_PORT:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /v2/health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
case $status in
  "HTTP/1."[01]" 200 "*) exit 0 ;;
  *) exit 1 ;;
esac
