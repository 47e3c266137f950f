#!/usr/bin/env bash
# sizeguard benchmark, end to end, one command:
#
#   scripts/bench.sh
#
# Builds a realistic GPU-style image (a debootstrap'ed Debian bookworm minbase
# root filesystem + the NVIDIA cuBLAS wheel from PyPI unzipped into
# site-packages + a small app layer), a candidate that adds one small layer on
# top, and a small (~50 MB) image; pushes them to a loopback CNCF distribution
# registry (Debian's docker-registry); then times, in the same run and
# round-robin, sizeguard against the lower bounds (curl | gzip/pigz/igzip with
# the same parallelism) and the skopeo + `tar -tvzf` status quo. Prints a table
# (median and min wall time, ratio to curl | igzip, CPU time, peak RSS from
# /usr/bin/time -v) and PASS/MISS per speed target.
#
# Environment (all optional):
#   BENCH_RUNS=3          timed runs per configuration (median and min reported)
#   BENCH_JOBS=$(nproc)   parallelism of sizeguard (--jobs) and of the pipelines
#   BENCH_WORK_DIR        scratch (default ${TMPDIR:-/tmp}/sizeguard-bench)
#   SIZEGUARD_BIN         use this binary instead of `cargo build --release`
#   BENCH_FEATURES        cargo features to build with instead of the default
#                         (ISA-L) build, e.g. pure-rust (then without default
#                         features), in a target dir of its own under the work dir
#   BENCH_SKIP_INSTALL=1  do not install anything (fail if something is missing)
#
# Built inputs (root filesystem tarball, wheel, compressed layers, the isal
# venv) are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/sizeguard-bench, so a
# rerun only pays for the timed runs. Needs root (or sudo) the first time, for
# apt-get and debootstrap; network access to the Debian mirror and PyPI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPERS=$ROOT/scripts/bench
RUNS=${BENCH_RUNS:-3}
JOBS=${BENCH_JOBS:-$(nproc)}
WORK=${BENCH_WORK_DIR:-${TMPDIR:-/tmp}/sizeguard-bench}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sizeguard-bench
CUBLAS_VERSION=12.8.4.1 # wheel: 594 MB; libcublasLt.so alone is 716 MiB unpacked
ISAL_VERSION=1.9.1
SUITE=bookworm

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

mkdir -p "$WORK" "$CACHE/layers"

# ---------------------------------------------------------------- dependencies
install_deps() {
  if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    "$ROOT/scripts/install-deps.sh"
    local need=()
    have debootstrap || [ -s "$CACHE/debian-$SUITE-minbase.tar" ] || need+=(debootstrap)
    have gzip || need+=(gzip)
    python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then
      log "apt-get install ${need[*]}"
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
    fi
    if ! "$CACHE/venv/bin/python" -c "import isal, sys; sys.exit(isal.__version__ != '$ISAL_VERSION')" 2>/dev/null; then
      log "python venv with isal==$ISAL_VERSION (ISA-L igzip) in $CACHE/venv"
      python3 -m venv "$CACHE/venv"
      "$CACHE/venv/bin/pip" install -q --disable-pip-version-check "isal==$ISAL_VERSION"
    fi
  fi
  local t
  for t in docker-registry skopeo curl pigz gzip tar python3; do have "$t" || die "missing $t"; done
  [ -x /usr/bin/time ] || die "missing /usr/bin/time (apt-get install time)"
  "$CACHE/venv/bin/python" -c 'import isal' || die "missing isal in $CACHE/venv"
}

build_sizeguard() {
  if [ -n "${SIZEGUARD_BIN:-}" ]; then
    SG=$SIZEGUARD_BIN
  elif [ -n "${BENCH_FEATURES:-}" ]; then
    # Own target dir, so the default binary in target/release is left alone.
    log "cargo build --release --features $BENCH_FEATURES (target dir $WORK/target-features)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$WORK/target-features cargo build --release --locked -q --no-default-features --features "$BENCH_FEATURES")
    SG=$WORK/target-features/release/sizeguard
  else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --locked -q)
    SG=$ROOT/target/release/sizeguard
  fi
  [ -x "$SG" ] || die "no sizeguard binary at $SG"
  SG_REV=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
  [ -z "${BENCH_FEATURES:-}" ] || SG_REV="$SG_REV, --features $BENCH_FEATURES"
}

# ---------------------------------------------------------------- image layers
# layer_from_tar NAME TARFILE: $CACHE/layers/NAME.tar.gz (pigz -6, one gzip
# member) with .diffid and .digest (sha256 hex) next to it; the .digest file is
# written last and marks the layer as complete.
layer_from_tar() {
  local out=$CACHE/layers/$1.tar.gz
  sha256sum < "$2" | cut -d' ' -f1 > "$out.diffid"
  pigz -6 -n -c < "$2" > "$out.tmp"
  mv "$out.tmp" "$out"
  sha256sum < "$out" | cut -d' ' -f1 > "$out.digest"
}
layer_from_dir() {
  local tarfile=$WORK/layer.tar
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1704067200 -C "$2" -cf "$tarfile" .
  layer_from_tar "$1" "$tarfile"
  rm -f "$tarfile"
}
have_layer() { [ -s "$CACHE/layers/$1.tar.gz.digest" ]; }

debian_mirror() {
  local m
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

build_layers() {
  local rootfs_tar=$CACHE/debian-$SUITE-minbase.tar
  if [ ! -s "$rootfs_tar" ]; then
    local mirror d
    mirror=$(debian_mirror)
    d=$WORK/debootstrap
    log "debootstrap --variant=minbase $SUITE from $mirror (a few minutes, once)"
    $SUDO rm -rf "$d"
    $SUDO debootstrap --variant=minbase "$SUITE" "$d" "$mirror" > "$WORK/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $WORK/debootstrap.log"
    # As the debian:bookworm image does: no downloaded .debs, no package lists.
    $SUDO rm -rf "$d"/var/cache/apt/archives/*.deb "$d"/var/lib/apt/lists/*
    $SUDO tar -C "$d" --numeric-owner --sort=name -cf "$rootfs_tar.partial" .
    $SUDO chown "$(id -u):$(id -g)" "$rootfs_tar.partial"
    mv "$rootfs_tar.partial" "$rootfs_tar"
    $SUDO rm -rf "$d"
  fi
  if ! have_layer base; then
    log "layer base: Debian $SUITE minbase"
    layer_from_tar base "$rootfs_tar"
  fi

  if ! have_layer cublas; then
    local wheels=$CACHE/wheels whl stage=$WORK/stage-cublas found
    mkdir -p "$wheels"
    found=("$wheels"/nvidia_cublas_cu12-"$CUBLAS_VERSION"-*.whl)
    whl=${found[0]}
    if [ ! -f "$whl" ]; then
      log "pip download nvidia-cublas-cu12==$CUBLAS_VERSION (~600 MB, once)"
      "$CACHE/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
        --only-binary :all: --platform manylinux_2_27_x86_64 -d "$wheels" "nvidia-cublas-cu12==$CUBLAS_VERSION"
      found=("$wheels"/nvidia_cublas_cu12-"$CUBLAS_VERSION"-*.whl)
      whl=${found[0]}
      [ -f "$whl" ] || die "pip download left no wheel in $wheels"
    fi
    log "layer cublas: $(basename "$whl") unzipped into site-packages"
    rm -rf "$stage"
    mkdir -p "$stage/usr/local/lib/python3.11/site-packages"
    python3 - "$whl" "$stage/usr/local/lib/python3.11/site-packages" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(path, mode)
EOF
    layer_from_dir cublas "$stage"
    rm -rf "$stage"
  fi

  # A small application layer (~5 MB: 300 small text files and a 3 MB binary)
  # and the candidate's one new layer (~1 MB). Deterministic content.
  local name
  for name in app patch; do
    have_layer "$name" && continue
    log "layer $name"
    local stage=$WORK/stage-$name
    rm -rf "$stage"
    mkdir -p "$stage"
    python3 - "$stage" "$name" <<'EOF'
import os, random, sys
root, name = sys.argv[1], sys.argv[2]
r = random.Random(name)
words = [''.join(r.choice('abcdefghijklmnopqrstuvwxyz_') for _ in range(r.randint(3, 12))) for _ in range(2000)]
def text(n):
    out, size = [], 0
    while size < n:
        line = ' '.join(r.choice(words) for _ in range(r.randint(4, 14))) + ';\n'
        out.append(line); size += len(line)
    return ''.join(out)[:n]
def binary(n):  # about 2:1 compressible, like machine code
    return bytes(r.choice(b'\x00\x00\x00\x48\x89\xe5\x8b\x45\xff\x0f') if i % 2 else r.getrandbits(8) for i in range(n))
def put(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())
if name == 'app':
    put('app/bin/server', binary(3 << 20)); os.chmod(os.path.join(root, 'app/bin/server'), 0o755)
    for i in range(300):
        put(f'app/static/{i // 50}/mod{i}.js', text(r.randint(1000, 12000)))
    put('app/VERSION', '1.0.0\n')
else:
    put('app/plugins/report.so', binary(700 << 10))
    put('app/static/new/feature.js', text(300 << 10))
    put('app/VERSION', '1.1.0\n')
EOF
    layer_from_dir "$name" "$stage"
    rm -rf "$stage"
  done
}

# ---------------------------------------------------------------- registry
REG_PID=""
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_registry() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  REG=127.0.0.1:$port
  mkdir -p "$WORK/registry"
  cat > "$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: $REG
  secret: sizeguard-bench-secret
EOF
  docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://$REG/v2/" >/dev/null && return 0
    kill -0 "$REG_PID" 2>/dev/null || die "registry exited: $(tail -n 5 "$WORK/registry.log")"
    sleep 0.1
  done
  die "registry did not answer on $REG"
}

push_images() {
  local L=$WORK/layouts
  mkdir -p "$L"
  python3 "$HELPERS/oci_layout.py" "$L/v1" v1 "$CACHE/layers/base.tar.gz" "$CACHE/layers/cublas.tar.gz" "$CACHE/layers/app.tar.gz"
  python3 "$HELPERS/oci_layout.py" "$L/v2" v2 "$CACHE/layers/base.tar.gz" "$CACHE/layers/cublas.tar.gz" "$CACHE/layers/app.tar.gz" "$CACHE/layers/patch.tar.gz"
  python3 "$HELPERS/oci_layout.py" "$L/small" v1 "$CACHE/layers/base.tar.gz" "$CACHE/layers/app.tar.gz"
  IMG_V1=$REG/bench/app:v1
  IMG_V2=$REG/bench/app:v2
  IMG_SMALL=$REG/bench/small:v1
  local pair src dst
  for pair in "v1:v1 $IMG_V1" "v2:v2 $IMG_V2" "small:v1 $IMG_SMALL"; do
    read -r src dst <<< "$pair"
    log "push $dst"
    skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$L/$src" "docker://$dst"
  done
  # Blob URLs of v1's layers, largest first (the order sizeguard schedules them).
  python3 - "$L/v1" "http://$REG/v2/bench/app/blobs" > "$WORK/urls-v1.txt" <<'EOF'
import json, os, sys
layout, base = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(layout, 'index.json')))
m = json.load(open(os.path.join(layout, 'blobs/sha256', idx['manifests'][0]['digest'].split(':')[1])))
for l in sorted(m['layers'], key=lambda l: -l['size']):
    print(f"{base}/{l['digest']}")
EOF
}

# ---------------------------------------------------------------- timing
# wait_idle: other processes on the machine (a cargo build...) distort the
# timings. Wait (at most BENCH_IDLE_WAIT=120 s) until the CPUs were at least
# 90% idle over one second; IDLE_BUSY is the busy percentage seen last.
wait_idle() {
  local deadline=$(($(date +%s) + ${BENCH_IDLE_WAIT:-120})) a b
  while :; do
    a=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8, $5}' /proc/stat)
    IDLE_BUSY=$(echo "$a $b" | awk '{ busy = $3 - $1; idle = $4 - $2; printf "%d", (busy + idle) ? 100 * busy / (busy + idle) : 0 }')
    [ "$IDLE_BUSY" -le 10 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "machine still ${IDLE_BUSY}% busy; timing anyway"
      return 0
    fi
  done
}

# timed NAME RUN OKCODES CMD...: runs CMD under /usr/bin/time -v, stdout to
# $OUT/NAME.RUN.out; appends NAME RUN wall user sys maxrss_kib status
# busy%-before to results.
timed() {
  local name=$1 run=$2 ok=$3 t0 t1 rc tv=$OUT/$1.$2.time
  shift 3
  wait_idle
  t0=$(date +%s%N)
  set +e
  /usr/bin/time -v -o "$tv" "$@" > "$OUT/$name.$run.out" 2> "$OUT/$name.$run.err"
  rc=$?
  set -e
  t1=$(date +%s%N)
  local user sys rss
  user=$(awk -F': ' '/User time/ {print $2}' "$tv")
  sys=$(awk -F': ' '/System time/ {print $2}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
  if ! [[ " $ok " == *" $rc "* ]]; then
    log "FAILED ($rc): $name run $run: $* -- $(tail -n 3 "$OUT/$name.$run.err" | tr '\n' ' ')"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" \
    "${user:-0}" "${sys:-0}" "${rss:-0}" \
    "$([[ " $ok " == *" $rc "* ]] && echo ok || echo "exit$rc")" "$IDLE_BUSY" >> "$RESULTS"
}

run_benchmarks() {
  OUT=$WORK/out
  RESULTS=$WORK/results.tsv
  rm -rf "$OUT" "$WORK/cache-"* "$WORK/skopeo-dir"
  mkdir -p "$OUT"
  : > "$RESULTS"
  local PY=$CACHE/venv/bin/python
  local common=(-q --jobs "$JOBS")

  log "warm-up: fetch every blob once (page cache), prewarm the sizeguard caches"
  "$HELPERS/fetch_inflate.sh" "$JOBS" "$WORK/urls-v1.txt" none
  "$SG" measure "${common[@]}" --cache-dir "$WORK/cache-measure" --format json "$IMG_V1" > "$OUT/prewarm.json"
  cp -a "$WORK/cache-measure" "$WORK/cache-base"

  HAVE_ESTIMATE=0
  if "$SG" measure --help 2>/dev/null | grep -q -- '--estimate'; then HAVE_ESTIMATE=1; else
    log "sizeguard measure has no --estimate flag: reported as n/a"
  fi

  BENCH_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
  export BENCH_LOADAVG
  log "load average $BENCH_LOADAVG (timings assume an otherwise idle machine)"
  local r
  for r in $(seq "$RUNS"); do
    log "round $r/$RUNS"
    timed "curl (fetch only)" "$r" 0 "$HELPERS/fetch_inflate.sh" "$JOBS" "$WORK/urls-v1.txt" none
    timed "curl | gzip -dc" "$r" 0 "$HELPERS/fetch_inflate.sh" "$JOBS" "$WORK/urls-v1.txt" gzip -dc
    timed "curl | pigz -dc" "$r" 0 "$HELPERS/fetch_inflate.sh" "$JOBS" "$WORK/urls-v1.txt" pigz -dc
    timed "curl | igzip -d" "$r" 0 "$HELPERS/fetch_inflate.sh" "$JOBS" "$WORK/urls-v1.txt" "$PY" -m isal.igzip -d -c
    timed "measure cold" "$r" 0 "$SG" measure "${common[@]}" --no-cache --format json "$IMG_V1"
    timed "measure warm" "$r" 0 "$SG" measure "${common[@]}" --cache-dir "$WORK/cache-measure" --format json "$IMG_V1"
    rm -rf "$WORK/cache-check" && cp -a "$WORK/cache-base" "$WORK/cache-check"
    timed "check warm (1 new small layer)" "$r" "0 1" "$SG" check "${common[@]}" --cache-dir "$WORK/cache-check" --no-config --format json --candidate "$IMG_V2" --baseline "$IMG_V1"
    if [ "$HAVE_ESTIMATE" = 1 ]; then
      timed "measure --estimate" "$r" 0 "$SG" measure "${common[@]}" --no-cache --estimate --format json "$IMG_V1"
    fi
    rm -rf "$WORK/skopeo-dir"
    timed "skopeo copy + tar -tvzf" "$r" 0 "$HELPERS/status_quo.sh" "docker://$IMG_V1" "$WORK/skopeo-dir"
    timed "measure cold, small image" "$r" 0 "$SG" measure "${common[@]}" --no-cache --format json "$IMG_SMALL"
  done
  rm -rf "$WORK/skopeo-dir"
}

# ---------------------------------------------------------------- main
install_deps
build_layers
build_sizeguard
start_registry
push_images
run_benchmarks
python3 "$HELPERS/report.py" --results "$WORK/results.tsv" --out "$WORK/out" \
  --layout "$WORK/layouts" --cache "$CACHE/layers" --jobs "$JOBS" --runs "$RUNS" \
  --sizeguard-rev "$SG_REV" --estimate "$HAVE_ESTIMATE" | tee "$WORK/report.md"
log "report also in $WORK/report.md; raw timings in $WORK/results.tsv, outputs in $WORK/out"
