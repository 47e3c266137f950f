#!/usr/bin/env bash
# `docker-daemon:` against a registry, on a real image of this machine's own
# files: three layers (/usr/bin, /usr/lib/gcc, /usr/lib/python3), loaded into
# a private Podman store and served by `podman system service`, then pushed
# from that store to a loopback registry the way `podman push` does it
# (skopeo compresses the engine's uncompressed layers with gzip). Prints the
# time and peak memory of measuring each, and per layer the compressed size
# sizeguard estimates from the engine's export next to the blob the push
# wrote. `export` is the floor: the engine's export alone, read by curl.
#   scripts/bench/daemon.sh [SIZEGUARD_BIN]
# Needs root, podman, skopeo, docker-registry, pigz, python3 (install-deps.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/target/debug/sizeguard}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sizeguard-daemon-bench.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
service=''
registry=''
cleanup() {
  [ -n "$service" ] && kill "$service" 2>/dev/null && wait "$service" 2>/dev/null
  [ -n "$registry" ] && kill "$registry" 2>/dev/null && wait "$registry" 2>/dev/null
  awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building layers under $WORK" >&2
mkdir -p "$WORK"/{layers,root,runroot,tmp,registry}
i=0
for dir in usr/bin usr/lib/gcc usr/lib/python3; do
  i=$((i + 1))
  tar -C / --sort=name --numeric-owner -cf "$WORK/layers/$i.tar" "$dir" 2>/dev/null || true
  sha256sum "$WORK/layers/$i.tar" | cut -d' ' -f1 >"$WORK/layers/$i.tar.gz.diffid"
  pigz -1 -c "$WORK/layers/$i.tar" >"$WORK/layers/$i.tar.gz"
  sha256sum "$WORK/layers/$i.tar.gz" | cut -d' ' -f1 >"$WORK/layers/$i.tar.gz.digest"
  rm "$WORK/layers/$i.tar"
done
python3 "$ROOT/scripts/bench/oci_layout.py" "$WORK/layout" v1 "$WORK"/layers/{1,2,3}.tar.gz

store="overlay@$WORK/root+$WORK/runroot"
skopeo --insecure-policy copy -q "oci:$WORK/layout:v1" "containers-storage:[$store]localhost/bench:v1"
podman --root "$WORK/root" --runroot "$WORK/runroot" --tmpdir "$WORK/tmp" --storage-driver overlay \
  --cgroup-manager cgroupfs --events-backend file system service --time=0 "unix://$WORK/api.sock" \
  >"$WORK/service.log" 2>&1 &
service=$!
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
registry=$!
for _ in $(seq 100); do
  [ -S "$WORK/api.sock" ] && curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break
  sleep 0.1
done
echo "pushing from the engine's store to the registry (gzip, as podman push)" >&2
skopeo --insecure-policy copy -q --dest-tls-verify=false \
  "containers-storage:[$store]localhost/bench:v1" "docker://127.0.0.1:$PORT/bench:v1"

run() { # NAME REF [ENV...]
  local name=$1 ref=$2
  shift 2
  env "$@" SIZEGUARD_NO_CACHE=1 /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" \
    "$BIN" measure --quiet --format json "$ref" >"$WORK/$name.json"
  read -r wall user sys rss <"$WORK/$name.time"
  printf '%-9s wall %6.2f s  cpu %6.2f s  peak RSS %5d MiB\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" $((rss / 1024))
}
for _ in $(seq "${BENCH_RUNS:-2}"); do
  # The floor: the engine's export alone, read and thrown away.
  start=$(date +%s.%N)
  curl -fsS --unix-socket "$WORK/api.sock" -o /dev/null "http://engine/v1.41/images/localhost/bench:v1/get"
  printf '%-9s wall %6.2f s\n' "export" "$(echo "$(date +%s.%N) - $start" | bc)"
  run daemon docker-daemon:localhost/bench:v1 "DOCKER_HOST=unix://$WORK/api.sock"
  run registry "127.0.0.1:$PORT/bench:v1"
done
python3 - "$WORK/daemon.json" "$WORK/registry.json" <<'EOF'
import json, sys
d, r = (json.load(open(p))["images"][0] for p in sys.argv[1:3])
same = all(dl[k] == rl[k] for dl, rl in zip(d["layers"], r["layers"])
           for k in ("tar_bytes", "content_bytes", "disk_bytes", "inodes", "files", "diff_id"))
print(f"every figure but compressed_bytes equal: {same}")
print(f"{'layer':<14}{'tar':>14}{'estimate':>14}{'pushed':>14}{'off':>8}")
for dl, rl in zip(d["layers"], r["layers"]):
    est, real = dl["compressed_bytes"], rl["compressed_bytes"]
    print(f"{dl['digest'][7:19]:<14}{dl['tar_bytes']:>14}{est:>14}{real:>14}{(est - real) / real:>+8.1%}")
est, real = d["totals"]["compressed_bytes"], r["totals"]["compressed_bytes"]
print(f"{'total':<14}{d['totals']['tar_bytes']:>14}{est:>14}{real:>14}{(est - real) / real:>+8.1%}")
EOF
