#!/usr/bin/env bash
# How long `sizeguard serve` takes to judge a pushed ~1 GB image, against a
# cold `sizeguard check` of the same image on the command line; or, with
# `load`, the receivers' accepted events per second.
#
#   scripts/bench/serve.sh
#   scripts/bench/serve.sh load
#
# `load` runs tests/serve_load.rs BENCH_RUNS times (default 5): 8000
# single-event deliveries over 32 kept-alive loopback connections to a
# service with the SQLite store, each answered 202 only once durable; it
# prints each run's rate and the min and median. The test itself fails
# below 1000/s.
#
# Builds a 4-layer image (each layer 128 MiB of random bytes and 128 MiB of
# text: ~1 GiB unpacked, ~600 MB gzip), starts a loopback docker-registry
# whose notifications go to a `sizeguard serve` with an empty data directory
# (so its layer cache is cold), pushes the image with skopeo, and reads the
# verdict's own timing (event received → verdict recorded). Then times
# `sizeguard check --no-cache` of the same digest. Each of BENCH_RUNS runs
# pushes to a new repository and starts a new service on a new data
# directory. Loopback only; everything it starts, it stops.
#
# Environment (optional): BENCH_RUNS=3, BENCH_WORK_DIR (default
# ${TMPDIR:-/tmp}/sizeguard-serve-bench), SIZEGUARD_BIN (default: cargo
# build --features isal, target/debug/sizeguard).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${BENCH_RUNS:-3}
WORK=${BENCH_WORK_DIR:-${TMPDIR:-/tmp}/sizeguard-serve-bench}
log() { printf '[serve-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${1:-}" = load ]; then
  cd "$ROOT"
  cargo test --quiet --features isal --test serve_load --no-run
  rates=()
  for run in $(seq "${BENCH_RUNS:-5}"); do
    line=$(cargo test --quiet --features isal --test serve_load -- --nocapture 2>&1 |
      grep -oE 'in [0-9.]+s: [0-9]+ accepted events/s' | head -1)
    [ -n "$line" ] || { echo "run $run: the load test failed" >&2; exit 1; }
    printf 'run %s (load %s): %s\n' "$run" "$(cut -d' ' -f1 /proc/loadavg)" "$line"
    rates+=("$(printf '%s' "$line" | grep -oE '[0-9]+ accepted' | cut -d' ' -f1)")
  done
  printf '%s\n' "${rates[@]}" | sort -n | python3 -c '
import sys
r = [int(l) for l in sys.stdin if l.strip()]
print("accepted events/s over %d runs: min %d, median %d, max %d" % (len(r), r[0], r[len(r) // 2], r[-1]))'
  exit 0
fi

for t in docker-registry skopeo pigz curl python3 tar sha256sum; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ -z "${SIZEGUARD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --features isal)
  SIZEGUARD_BIN=$ROOT/target/debug/sizeguard
fi
SG=$SIZEGUARD_BIN
mkdir -p "$WORK"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------------ the image
LAYOUT=$WORK/layout
if [ ! -s "$LAYOUT/index.json" ]; then
  log "building the ~1 GiB image"
  layers=()
  for i in 1 2 3 4; do
    d=$WORK/rootfs-$i
    rm -rf "$d" && mkdir -p "$d/opt/part$i"
    head -c $((128 << 20)) /dev/urandom >"$d/opt/part$i/random.bin"
    # Text that compresses about 4:1, as binaries and libraries do.
    head -c $((96 << 20)) /dev/urandom | base64 -w 120 >"$d/opt/part$i/text.txt"
    truncate -s $((128 << 20)) "$d/opt/part$i/text.txt"
    tar -C "$d" -cf "$WORK/layer$i.tar" .
    sha256sum "$WORK/layer$i.tar" | cut -d' ' -f1 >"$WORK/layer$i.tar.gz.diffid"
    pigz -6 -c "$WORK/layer$i.tar" >"$WORK/layer$i.tar.gz"
    sha256sum "$WORK/layer$i.tar.gz" | cut -d' ' -f1 >"$WORK/layer$i.tar.gz.digest"
    rm -rf "$d" "$WORK/layer$i.tar"
    layers+=("$WORK/layer$i.tar.gz")
  done
  python3 "$ROOT/scripts/bench/oci_layout.py" "$LAYOUT" big "${layers[@]}"
fi

# ------------------------------------------------------- registry and service
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

REG_PORT=$(free_port)
SERVE_PORT=$(free_port)
REG=127.0.0.1:$REG_PORT
SERVE=127.0.0.1:$SERVE_PORT
SECRET=bench-secret
echo "$SECRET" >"$WORK/secret"
rm -rf "$WORK/registry" && mkdir -p "$WORK/registry"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
notifications:
  endpoints:
    - name: sizeguard
      url: http://$SERVE/v1/events/distribution
      headers:
        Authorization: ["Bearer $SECRET"]
      timeout: 2s
      threshold: 3
      backoff: 1s
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

printf '%-4s %-14s %12s %12s %8s\n' run repository serve_s check_s ratio
for run in $(seq "$RUNS"); do
  repo=bench/big$run
  data=$WORK/data-$run
  rm -rf "$data"
  "$SG" serve --listen "$SERVE" --data-dir "$data" --allow-registry "$REG" \
    --secret-file "$WORK/secret" --workers 1 >"$WORK/serve-$run.log" 2>&1 &
  serve_pid=$!
  PIDS+=("$serve_pid")
  for _ in $(seq 100); do curl -fs "http://$SERVE/healthz" >/dev/null && break; sleep 0.1; done

  skopeo copy --quiet --dest-tls-verify=false --dest-no-creds \
    "oci:$LAYOUT:big" "docker://$REG/$repo:v1"
  digest=$(skopeo inspect --tls-verify=false --no-creds --raw "docker://$REG/$repo:v1" | sha256sum | cut -d' ' -f1)
  digest=sha256:$digest
  verdict=""
  for _ in $(seq 1200); do
    verdict=$(curl -fs "http://$SERVE/v1/verdicts/$digest" || true)
    [ -n "$verdict" ] && break
    sleep 0.5
  done
  [ -n "$verdict" ] || { echo "no verdict for $digest" >&2; tail -20 "$WORK/serve-$run.log" >&2; exit 1; }
  serve_s=$(printf '%s' "$verdict" | python3 -c 'import json,sys; v=json.load(sys.stdin); print("%.2f" % ((v["judged_at_ms"]-v["event"]["received_at_ms"])/1000))')
  kill -TERM "$serve_pid"; wait "$serve_pid" || true

  start=$(date +%s.%N)
  "$SG" check --no-cache --quiet --no-config --format json --candidate "$REG/$repo@$digest" >"$WORK/check-$run.json" || true
  end=$(date +%s.%N)
  check_s=$(python3 -c "print('%.2f' % ($end - $start))")
  ratio=$(python3 -c "print('%.2f' % ($serve_s / $check_s))")
  printf '%-4s %-14s %12s %12s %8s\n' "$run" "$repo" "$serve_s" "$check_s" "$ratio"
done
