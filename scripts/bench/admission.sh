#!/usr/bin/env bash
# How long `sizeguard serve` takes to answer an admission review of a
# 5-container pod whose images are known, against the floor of the same
# HTTPS request to /healthz on the same kept-alive connection.
#
#   scripts/bench/admission.sh
#
# Builds five images (a shared 8 MiB base layer, each with a 2 MiB layer of
# its own), pushes them to a loopback docker-registry, measures them once
# with `sizeguard measure --cache-dir` (the layer cache the service then
# reads), and starts `sizeguard serve` over TLS (a self-signed pair) with
# [serve.admission] on, two pools and that cache. The review's object is
# `kubectl create deployment --image=... x5 --dry-run=client -o json`,
# wrapped as the API server wraps it. One client, one kept-alive HTTPS
# connection, timed round-robin in one run:
#   - first: the first review after start (each image resolved through the
#     registry and rebuilt from the layer cache);
#   - warm: BENCH_REVIEWS (default 200) more reviews (tags resolved within
#     the last 30 s, figures in memory: what the API server mostly sees);
#   - expired: a review every 31 s after the tags' 30 s expired, so each
#     image's tag is resolved through the registry again (BENCH_EXPIRED
#     reviews, default 3);
#   - healthz: GET /healthz on the same connection, the floor.
# Prints the median, p90 and max of each, and the service's own timing from
# its log (`admission review ... milliseconds`). Loopback only; everything
# it starts, it stops.
#
# Environment (optional): BENCH_REVIEWS=200, BENCH_EXPIRED=3, BENCH_WORK_DIR
# (default ${TMPDIR:-/tmp}/sizeguard-admission-bench), SIZEGUARD_BIN
# (default: cargo build --release, target/release/sizeguard).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REVIEWS=${BENCH_REVIEWS:-200}
EXPIRED=${BENCH_EXPIRED:-3}
WORK=${BENCH_WORK_DIR:-${TMPDIR:-/tmp}/sizeguard-admission-bench}
log() { printf '[admission-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for t in docker-registry skopeo pigz curl python3 tar sha256sum openssl kubectl; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ -z "${SIZEGUARD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --release)
  SIZEGUARD_BIN=$ROOT/target/release/sizeguard
fi
SG=$SIZEGUARD_BIN
rm -rf "$WORK" && mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ----------------------------------------------------------------- the images
layer() { # DIR NAME: a gzip layer of DIR, its digest and diff_id beside it
  tar -C "$1" -cf "$WORK/$2.tar" .
  sha256sum "$WORK/$2.tar" | cut -d' ' -f1 >"$WORK/$2.tar.gz.diffid"
  pigz -6 -n -c "$WORK/$2.tar" >"$WORK/$2.tar.gz"
  sha256sum "$WORK/$2.tar.gz" | cut -d' ' -f1 >"$WORK/$2.tar.gz.digest"
  rm -f "$WORK/$2.tar"
}
mkdir -p "$WORK/base/usr/lib"
head -c $((8 << 20)) /dev/urandom >"$WORK/base/usr/lib/libbase.so"
layer "$WORK/base" base
for i in 1 2 3 4 5; do
  mkdir -p "$WORK/app$i/srv"
  head -c $((2 << 20)) /dev/urandom >"$WORK/app$i/srv/app$i.bin"
  layer "$WORK/app$i" "app$i"
  python3 "$ROOT/scripts/bench/oci_layout.py" "$WORK/layout$i" v1 "$WORK/base.tar.gz" "$WORK/app$i.tar.gz"
done

# ------------------------------------------------------- registry and service
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

REG=127.0.0.1:$(free_port)
SERVE=127.0.0.1:$(free_port)
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
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
images=()
for i in 1 2 3 4 5; do
  skopeo copy --quiet --dest-tls-verify=false --dest-no-creds "oci:$WORK/layout$i:v1" "docker://$REG/bench/app$i:v1"
  images+=("$REG/bench/app$i:v1")
done
log "measuring the five images into the layer cache"
"$SG" measure -q --cache-dir "$WORK/cache" --format json "${images[@]}" >/dev/null

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=sizeguard-bench \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null
echo bench-delivery-secret >"$WORK/secret"
echo bench-admission-token >"$WORK/token"
cat >"$WORK/sizeguard.toml" <<EOF
[nodes.general]
capacity = "100Gi"
system-reserved = "20Gi"
[nodes.gpu]
capacity = "50Gi"
system-reserved = "30Gi"

[serve.admission]
token-file = "$WORK/token"

[[serve.admission.pools]]
selector = { "node.kubernetes.io/instance-type" = "m5.xlarge" }
profile = "general"
[[serve.admission.pools]]
selector = { "node.kubernetes.io/instance-type" = "g5.xlarge" }
profile = "gpu"
EOF
"$SG" serve --config "$WORK/sizeguard.toml" --listen "$SERVE" --data-dir "$WORK/data" \
  --allow-registry "$REG" --secret-file "$WORK/secret" --cache-dir "$WORK/cache" \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --workers 1 >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs --cacert "$WORK/cert.pem" "https://$SERVE/healthz" >/dev/null && break; sleep 0.1; done

args=()
for i in "${images[@]}"; do args+=("--image=$i"); done
HOME=$WORK kubectl create deployment bench "${args[@]}" --dry-run=client -o json >"$WORK/deployment.json"

log "timing: 1 first review, $REVIEWS warm, $EXPIRED after the tag TTL, /healthz beside each"
python3 - "$SERVE" "$WORK" "$REVIEWS" "$EXPIRED" <<'EOF'
import http.client, json, ssl, statistics, sys, time

addr, work, reviews, expired = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=f"{work}/cert.pem")
conn = http.client.HTTPSConnection(host, int(port), context=ctx)
deployment = json.load(open(f"{work}/deployment.json"))
headers = {"Authorization": "Bearer bench-admission-token", "Content-Type": "application/json"}

def review(uid):
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": gvk, "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "bench", "namespace": "default", "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": deployment, "dryRun": False}}).encode()

def timed(method, path, body=None):
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    ms = (time.perf_counter() - start) * 1000
    assert r.status == 200, (r.status, data)
    return ms, data

def answer(uid):
    ms, data = timed("POST", "/v1/admission?timeout=10s", review(uid))
    resp = json.loads(data)["response"]
    assert resp["uid"] == uid and resp["allowed"], resp
    assert not resp.get("warnings"), resp  # every image known: nothing unmeasured
    return ms

timed("GET", "/healthz")  # the handshake, outside every figure
first = [answer("first")]
warm, health = [], []
for n in range(reviews):
    warm.append(answer(f"warm-{n}"))
    health.append(timed("GET", "/healthz")[0])
late = []
for n in range(expired):
    time.sleep(31)
    conn.close(); timed("GET", "/healthz")
    late.append(answer(f"expired-{n}"))

def row(name, xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(len(xs) * 0.9))]
    print(f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | {p90:.2f} | {xs[-1]:.2f} |")
print("| request | n | median ms | p90 ms | max ms |")
print("|---|---:|---:|---:|---:|")
row("review, first after start (5 images resolved, rebuilt from the layer cache)", first)
row("review, warm (5 images known, tags resolved < 30 s ago)", warm)
row("review, tags expired (5 images resolved through the registry again)", late)
row("GET /healthz on the same connection (the floor)", health)
print(f"\nwarm median / healthz median: {statistics.median(warm) / statistics.median(health):.2f}x")
EOF
python3 - "$WORK/serve.log" <<'EOF'
import re, statistics, sys
ms = [float(m) for m in re.findall(r'milliseconds=([0-9.]+)', open(sys.argv[1]).read())]
if ms:
    print(f"service's own timing (log), {len(ms)} reviews: first {ms[0]:.2f} ms, "
          f"median of the rest {statistics.median(ms[1:] or ms):.3f} ms, max of the rest {max(ms[1:] or ms):.2f} ms")
EOF
printf 'machine: %s cores, load average %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
