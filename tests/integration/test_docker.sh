#!/usr/bin/env bash
# test_docker.sh: docker/Dockerfile built with buildah and run: the image builds from this tree,
# becomes ready and passes its HEALTHCHECK command, answers a prediction and serves the frontend,
# runs as uid 10001 with no compiler inside, takes settings from the environment and flags,
# serves a mounted model repository instead of its own, and exits 0 on SIGTERM.
# It runs the image with `podman run --network host` where podman can start containers; where it
# cannot (nested in another container, podman's OCI runtime may be refused setrlimit or cgroups),
# with `buildah run --isolation chroot --network host`: the same image, user, environment,
# entrypoint and mount, without a runtime. It says which.
# Skipped (exit 77) without podman and buildah or without the base image: no registry is
# reachable here, so the base must be local. Make one from Debian's archive as
# ../shared/tools/fresh-debian.sh does:
#   debootstrap --variant=minbase bookworm /tmp/rootfs/bookworm
#   tar -C /tmp/rootfs/bookworm -c . | podman import - localhost/debian:bookworm-slim
# The build itself, as this test runs it (from the repository's root):
#   buildah bud --isolation chroot --network host --layers --format docker \
#     --build-arg BASE=localhost/debian:bookworm-slim -f docker/Dockerfile -t localhost/salient:test .
# Set SALIENT_DOCKER_BASE for another base image. The first build installs packages from Debian
# (apt, over the network) and compiles salientd: minutes; later builds reuse the cached layers.
. "$(dirname "$0")/lib.sh"
BASE=${SALIENT_DOCKER_BASE:-localhost/debian:bookworm-slim}
IMAGE=localhost/salient:test
for tool in podman buildah curl; do
  command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done
podman image exists "$BASE" || { echo "skip: no base image $BASE (see the top of this file to make one)"; exit 77; }
name=salient-test-$$
bpids=()
cleanup() {
  for p in "${bpids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "$name" "$name-own" "$name-tools"; do
    podman rm -f --ignore "$n" >/dev/null 2>&1
    buildah rm "$n" >/dev/null 2>&1
  done
}
on_exit cleanup

old_image=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null)
# Build. --format docker: OCI images have no HEALTHCHECK. Chroot isolation and the host's
# network: no container runtime networking is needed to build.
if (cd "$SRCDIR" && buildah bud --isolation chroot --network host --layers --format docker \
      --build-arg BASE="$BASE" -f docker/Dockerfile -t "$IMAGE" .) >"$tmp/build.log" 2>&1; then
  ok "buildah bud -f docker/Dockerfile (BASE=$BASE)"
else
  bad "buildah bud: $(tail -n 20 "$tmp/build.log")"
  finish
fi
# The build stage's cached layers (compiler, sources: ~1 GB a chain) that this build replaced
# would pile up with every change of the sources: keep the current chain (tagged :test-build,
# all from the cache just filled), remove the other untagged ones with the build stage's label.
if (cd "$SRCDIR" && buildah bud --isolation chroot --network host --layers --format docker --target build \
      --build-arg BASE="$BASE" -f docker/Dockerfile -t "$IMAGE-build" .) >>"$tmp/build.log" 2>&1; then
  keep=" $(podman history --format '{{.ID}}' "$IMAGE-build" | tr '\n' ' ') "
  for id in $(podman images -q --filter dangling=true --filter label=org.salient.stage=build); do
    case $keep in *" $id "*) ;; *) podman rmi "$id" >/dev/null 2>&1 ;; esac
  done
fi
new_image=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null)
[ -n "$old_image" ] && [ "$old_image" != "$new_image" ] && podman rmi "$old_image" >/dev/null 2>&1
grep -q "^not in the image: " "$tmp/build.log" && sed -n 's/^not in the image: /# not in the image: /p' "$tmp/build.log"
expect "the image's user is 10001" "10001:10001" "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q '/usr/local/bin/salient-healthcheck' \
  && ok "the image has a HEALTHCHECK" || bad "the image has a HEALTHCHECK"
echo "# image size: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if podman run --rm --network host --health-interval disable --entrypoint /bin/true "$IMAGE" >"$tmp/podman.log" 2>&1; then
  runner=podman
else
  runner=buildah
  echo "# podman cannot start containers here ($(grep -v 'level=' "$tmp/podman.log" | tail -n 1)): running the image with buildah run --isolation chroot"
fi
# start NAME PORT [-e X=Y | -v A:B]... -- [salientd flags]: the image's entrypoint, on the host's
# network bound to loopback (nothing else on this machine sees the port; no rootless network
# setup is needed). Sets $spid, the salientd process, once it listens.
start() {
  local cname=$1 cport=$2 opts=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  opts+=(-e SALIENT_PORT="$cport" -e SALIENT_HOST=127.0.0.1)
  if [ $runner = podman ]; then
    podman run -d --name "$cname" --network host --health-interval disable "${opts[@]}" "$IMAGE" "$@" >/dev/null || return 1
  else
    buildah from --name "$cname" "$IMAGE" >/dev/null || return 1
    buildah run --isolation chroot --network host "${opts[@]}" "$cname" -- /usr/local/bin/salient-entrypoint "$@" \
      >"$tmp/$cname.log" 2>&1 &
    bpids+=($!)
  fi
  spid=
  for _ in $(seq 1 600); do
    # (salientd may re-exec itself to set its OpenMP environment, so it can be named "exe")
    spid=$(ss -ltnpH "sport = :$cport" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
    [ -n "$spid" ] && return 0
    sleep 0.2
  done
  return 1
}
logs() { if [ $runner = podman ]; then podman logs "$1" 2>&1; else cat "$tmp/$1.log"; fi; }
wait_ready() {
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/v2/health/ready")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

buildah from --name "$name-tools" "$IMAGE" >/dev/null && buildah run --isolation chroot "$name-tools" -- \
  sh -c 'for t in gcc cc make autoreconf curl; do command -v $t; done; echo end' >"$tmp/tools" 2>/dev/null
buildah rm "$name-tools" >/dev/null 2>&1
expect "no compiler, build tools or curl in the runtime image" "end" "$(cat "$tmp/tools")"

# Settings by environment (port, host, threads) and by flag; SALIENT_URL is no setting.
port=$(free_port)
start "$name" "$port" -e SALIENT_THREADS=1 -e SALIENT_URL=ignored -- --max-batch-size 4 \
  || { bad "the image starts ($runner): $(logs "$name" | tail -n 20)"; finish; }
base=http://127.0.0.1:$port
wait_ready "$base" && ok "the container becomes ready ($runner)" || { bad "the container becomes ready: $(logs "$name" | tail -n 20)"; finish; }
if [ $runner = podman ]; then
  podman healthcheck run "$name" >/dev/null 2>&1; expect "podman healthcheck run: healthy" 0 $?
else
  buildah run --isolation chroot --network host -e SALIENT_PORT="$port" "$name" -- /usr/local/bin/salient-healthcheck
  expect "the HEALTHCHECK command says healthy" 0 $?
fi
expect "salientd runs as uid 10001" 10001 "$(stat -c %u /proc/"$spid")"
if [ $runner = podman ]; then
  user=$(podman exec "$name" sh -c 'echo "$(id -un):$(id -gn)"')
else
  user=$(buildah run --isolation chroot "$name" -- sh -c 'echo "$(id -un):$(id -gn)"')
fi
expect "... the image's user and group salient" "salient:salient" "$user"
ppid=$(awk '{print $4}' /proc/"$spid"/stat)
[ "$(cat /proc/"$ppid"/comm)" != salient-entrypo ] && [ "$(readlink /proc/"$spid"/exe | sed 's|.*/usr/local/bin/|/usr/local/bin/|')" = /usr/local/bin/salientd ] \
  && ok "the entrypoint execs salientd (signals reach it)" || bad "the entrypoint execs salientd: parent is $(cat /proc/"$ppid"/comm)"
tr '\0' ' ' </proc/"$spid"/cmdline >"$tmp/cmdline"
grep -q -- "--port $port --host 127.0.0.1 .*--threads 1 .*--max-batch-size 4" "$tmp/cmdline" \
  && ok "environment settings became flags, the run's own flags last" || bad "flags: $(cat "$tmp/cmdline")"
grep -q -- "--url" "$tmp/cmdline" && bad "a SALIENT_ variable that is no setting became a flag" || ok "other SALIENT_ variables are left alone"
curl -s "$base/v1/models" >"$tmp/models"
for m in chexnet-demo covid-resnet-demo quadrant-demo; do
  grep -q "\"name\":\"$m\",\"version\":\"1\",\"family\":\"[a-z_]*\",\"task\":\"[a-z]*\",\"demo\":true,\"state\":\"READY\"" "$tmp/models" \
    && ok "demo model $m inside" || bad "demo model $m inside: $(head -c 300 "$tmp/models")"
done
if ls "$SRCDIR"/build/faceapi/vladmandic-face-api-*.tgz >/dev/null 2>&1 && [ -n "$(ls "$SRCDIR"/build/faceapi/demo/*.jpg 2>/dev/null)" ]; then
  photo=$(ls "$SRCDIR"/build/faceapi/demo/*.jpg | head -n 1)
  n=$(curl -s -H 'Content-Type: image/jpeg' --data-binary @"$photo" "$base/v1/models/faces:predict" | grep -o '"landmarks":' | wc -l)
  [ "$n" -ge 1 ] && ok "the faces model inside (face-api's weights from build/faceapi): $n face(s) in $(basename "$photo")" \
    || bad "the faces model inside: $(curl -s "$base/v1/models/faces" | head -c 300)"
else
  echo "# no build/faceapi/vladmandic-face-api-*.tgz (scripts/fetch-faceapi.sh): the image has no faces model"
fi
code=$(curl -s -o "$tmp/pred" -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$SRCDIR/tests/data/phantom_00000.png" \
  "$base/v1/models/chexnet-demo:predict?top_k=2&attention=png")
expect "a prediction with attention overlays" 200 "$code"
grep -q '"labels":\[{"label":"[A-Za-z_]*","score":' "$tmp/pred" && grep -q '"overlays":\[{"of":"attention/denseblock1","png":"iVBOR' "$tmp/pred" \
  && ok "... labels and PNG overlays in the answer" || bad "... labels and overlays: $(head -c 300 "$tmp/pred")"
expect "the frontend at /" "200 text/html; charset=utf-8" "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base/")"
expect "its JS client (a link in the source, a file in the image)" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$base/static/salient.js")"
logs "$name" | grep -q "model repository /opt/salient/model-repo" && ok "no mount: the built-in demo models" || bad "no mount: the built-in demo models"
if [ $runner = podman ]; then
  podman stop -t 20 "$name" >/dev/null
  status=$(podman inspect --format '{{.State.ExitCode}}' "$name")
else
  kill -TERM "$spid"
  wait "${bpids[0]}"
  status=$?
fi
expect "SIGTERM: salientd drains and exits 0" 0 "$status"

# Your own repository, mounted at /models: only its models are served.
mkdir -p "$tmp/own"
cp -r "$SRCDIR/models/repo/quadrant-demo" "$tmp/own/my-model"
chmod -R a+rX "$tmp"
port=$(free_port)
start "$name-own" "$port" -v "$tmp/own:/models:ro" -- || { bad "the image starts with a mount: $(logs "$name-own" | tail -n 20)"; finish; }
wait_ready "http://127.0.0.1:$port"
names=$(curl -s "http://127.0.0.1:$port/v1/models" | grep -o '"name":"[^"]*","version"' | tr '\n' ' ')
expect "a repository mounted at /models replaces the demo models" '"name":"my-model","version" ' "$names"
finish
