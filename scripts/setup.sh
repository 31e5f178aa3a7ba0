#!/usr/bin/env bash
# setup.sh: install what salient needs on Debian bookworm (as root), then build it.
# Idempotent: installs only missing packages and rebuilds only what changed.
#   scripts/setup.sh            # packages + build
#   scripts/setup.sh --test    # also what the test suite needs (PyTorch for the parity tests)
#   scripts/setup.sh --bench   # also what bench/ needs (PyTorch and gnuplot for run_models.sh, wrk for bench_server.sh)
#   SALIENT_SKIP_APT=1 scripts/setup.sh   # build only
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and run-time packages, all from Debian. Add a package here, not in a README step.
PACKAGES=(
  build-essential autoconf automake libtool pkg-config git ca-certificates curl
  libmicrohttpd-dev libjansson-dev check libopenblas-dev libturbojpeg0-dev libpng-dev
)

# Node and npm fetch face-api's weights (npm pack) for the faces model; the faces parity test runs
# face-api itself under Node. A nodejs that bundles npm (NodeSource's) conflicts with Debian's npm
# package, so npm is asked for only when the command is missing.
PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

# The parity tests compare against PyTorch and torchvision; serving needs neither.
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(python3 python3-torch python3-torchvision python3-numpy python3-pil python3-sklearn)
  # The clients' tests: jq, headless Chromium for the frontend, nginx in front of replicas, YAML
  # for the k8s manifests (Node and npm are asked for above).
  PACKAGES+=(jq chromium nginx-light python3-yaml)
  # tests/fuzz: libFuzzer harnesses need clang with its fuzzer and sanitizer runtimes
  # (libclang-rt-14-dev) and its OpenMP (libomp-14-dev, for engine/ctx.c).
  PACKAGES+=(clang libclang-rt-14-dev libomp-14-dev)
fi
# bench/run_models.sh: PyTorch exports and times the models, gnuplot draws the plot (ONNX Runtime
# comes from npm, pinned by bench/package-lock.json, installed by the harness itself).
# bench/bench_server.sh loads salientd with wrk.
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(python3 python3-torch python3-torchvision python3-numpy python3-pil gnuplot-nox wrk)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ -z "${SALIENT_SKIP_APT:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package may start a service here (nginx would take port 80): the tests run their own.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# The browser test drives Chromium with playwright-core (from npm; it downloads no browser).
# Without it (npm's registry unreachable) that test skips its browser part; nothing else needs it.
if [ "${1:-}" = "--test" ] && [ ! -d clients/web/test/node_modules/playwright-core ] && command -v npm >/dev/null; then
  echo "setup: npm ci in clients/web/test (playwright-core)"
  # Node's own CA list plus the system's (as scripts/fetch-faceapi.sh does).
  NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} \
    npm ci --prefix clients/web/test --ignore-scripts --no-audit --no-fund >/dev/null ||
    echo "setup: npm ci failed: tests/integration/test_web.sh will skip its browser part" >&2
fi

# Out-of-tree build in build/, so the source tree stays clean.
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  echo "setup: autoreconf"
  autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p build
if [ ! -f build/Makefile ] || [ configure -nt build/config.status ]; then
  echo "setup: configure"
  (cd build && ../configure --enable-werror ${SALIENT_CONFIGURE_FLAGS:-} >/dev/null)
fi
echo "setup: make"
make -C build -j"$(nproc)" >/dev/null
echo "setup: built build/server/salientd"

# face-api's trained weights for the faces model (npm pack, cached in build/faceapi); with --test
# also the Node packages the faces parity test runs face-api with. Serving the other models does
# not need them, so plain setup goes on without them when the npm registry cannot be reached.
if [ "${1:-}" = "--test" ]; then
  scripts/fetch-faceapi.sh --node ||
    echo "setup: warning: face-api could not be fetched from npm; the faces tests will skip" >&2
elif ! scripts/fetch-faceapi.sh; then
  echo "setup: warning: face-api's weights could not be fetched; the faces model will be missing" >&2
fi
