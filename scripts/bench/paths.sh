#!/usr/bin/env bash
# The cost of the growth-by-path diff: `sizeguard check` of a candidate of
# many files against a baseline of many files, two binaries side by side
# (one without the diff, one with it), round-robin, under /usr/bin/time -v.
#
# usage: scripts/bench/paths.sh BEFORE_BIN AFTER_BIN
#
# BENCH_RUNS (3) rounds; BENCH_FILES (300000) files in the baseline's layer,
# the candidate adds BENCH_FILES/2 more in a layer of its own and rewrites
# one directory. Layers are written with GNU tar and `gzip -1 -n`, the OCI
# layout by scripts/bench/oci_layout.py. Scratch in
# ${BENCH_WORK_DIR:-${TMPDIR:-/tmp}/sizeguard-bench-paths}, removed on exit
# unless BENCH_KEEP=1.
set -euo pipefail

before=${1:?usage: paths.sh BEFORE_BIN AFTER_BIN}
after=${2:?usage: paths.sh BEFORE_BIN AFTER_BIN}
runs=${BENCH_RUNS:-3}
files=${BENCH_FILES:-300000}
work=${BENCH_WORK_DIR:-${TMPDIR:-/tmp}/sizeguard-bench-paths}
here=$(cd "$(dirname "$0")" && pwd)

rm -rf "$work"
mkdir -p "$work"
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# A tree of DIRS directories of 1000 files of SIZE bytes under PREFIX.
tree() {
  local root=$1 prefix=$2 dirs=$3 size=$4
  python3 - "$root/$prefix" "$dirs" "$size" <<'PY'
import os, sys
root, dirs, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = b"x" * size
for d in range(dirs):
    p = os.path.join(root, "d%04d" % d)
    os.makedirs(p, exist_ok=True)
    for f in range(1000):
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(data)
PY
}

# LAYER.tar.gz, .digest and .diffid from the directory ROOT.
layer() {
  local root=$1 out=$2
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$out.tar" .
  sha256sum "$out.tar" | cut -d' ' -f1 > "$out.tar.gz.diffid"
  gzip -1 -n -c "$out.tar" > "$out.tar.gz"
  sha256sum "$out.tar.gz" | cut -d' ' -f1 > "$out.tar.gz.digest"
  rm -f "$out.tar"
}

mkdir -p "$work/base" "$work/added" "$work/rewritten"
tree "$work/base" usr/share/data $((files / 1000)) 100
tree "$work/added" opt/app/lib $((files / 2000)) 200
tree "$work/rewritten" usr/share/data 1 300
layer "$work/base" "$work/l0"
layer "$work/added" "$work/l1"
layer "$work/rewritten" "$work/l2"
rm -rf "$work/base" "$work/added" "$work/rewritten"
python3 "$here/oci_layout.py" "$work/v1" v1 "$work/l0.tar.gz"
python3 "$here/oci_layout.py" "$work/v2" v2 "$work/l0.tar.gz" "$work/l1.tar.gz" "$work/l2.tar.gz"

printf '| binary | run | wall s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|---:|\n'
for r in $(seq 1 "$runs"); do
  for which in before after; do
    bin=$before
    [ "$which" = after ] && bin=$after
    start=$(date +%s.%N)
    /usr/bin/time -v "$bin" check -q --no-config --jobs 2 --no-cache --format json \
      --candidate "oci:$work/v2:v2" --baseline "oci:$work/v1:v1" \
      > "$work/out-$which.json" 2> "$work/time-$which.txt" || true
    end=$(date +%s.%N)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time-$which.txt")
    user=$(sed -n 's/.*User time (seconds): //p' "$work/time-$which.txt")
    sys=$(sed -n 's/.*System time (seconds): //p' "$work/time-$which.txt")
    printf '| %s | %s | %.2f | %.2f | %.1f |\n' "$which" "$r" \
      "$(echo "$end - $start" | bc)" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc -l)"
  done
done
