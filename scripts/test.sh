#!/usr/bin/env bash
# Runs joblet's whole test suite on a fresh machine: installs what the tests need
# (redis-server; podman, docker.io, runc and busybox-static for the container runtimes, whose
# test images scripts/test-images.sh and examples/images/build.sh make; the Python
# kubernetes and Prometheus clients; docker-registry, a registry to pull from; chromium for
# the web view; kubectl must already be on the
# machine image), starts the Docker daemon
# if it is not running, then `cargo test`, then each fuzz target for a short time
# (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
# The web view's tests run in a real headless browser.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: the tests need ${need_apt[*]}; install it (apt-get install -y ${need_apt[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The container runtimes run containers with runc and mount overlays: they need root.
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the container runtimes' tests need root (they mount overlays and run runc)" >&2
  exit 1
fi
# The docker runtime's images are the Docker daemon's: started when it is not running.
if ! docker info >/dev/null 2>&1; then
  dockerd_log=$(mktemp --tmpdir joblet-test-dockerd.XXXXXX)
  setsid dockerd >"$dockerd_log" 2>&1 < /dev/null &
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  if ! docker info >/dev/null 2>&1; then
    echo "error: the Docker daemon did not start; its log ($dockerd_log) ends:" >&2
    tail -n 20 "$dockerd_log" >&2
    exit 1
  fi
fi
scripts/test-images.sh
# The images the recipe's manifests name, as they are written (examples/recipe/).
examples/images/build.sh
if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is not on PATH; the Python client test needs it" >&2
  exit 1
fi
# The official Kubernetes Python client, for the client-library test; the Prometheus
# client library, whose parser reads /metrics in its test.
python3 -c 'import kubernetes' 2>/dev/null || python3 -m pip install -q kubernetes
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus-client
if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl is not on PATH; the kubectl end-to-end tests need the real kubectl" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
# The fuzz targets on their corpora, 20 s each: a crash or hang fails the suite.
scripts/fuzz.sh "${FUZZ_SECONDS:-20}" || status=$?
exit "$status"
