#!/usr/bin/env python3
"""Summarise a scripts/bench.sh run: machine, image composition, the timing
table (median/min wall, ratio to curl | igzip, CPU, peak RSS) and the issue-5
target checks. Output is Markdown, pasted as is into BENCHMARKS.md."""
import argparse
import collections
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess

MIB = 1 << 20
REF = "curl | igzip -d"

p = argparse.ArgumentParser()
p.add_argument("--results", required=True)
p.add_argument("--out", required=True)
p.add_argument("--layout", required=True)
p.add_argument("--cache", required=True)
p.add_argument("--jobs", required=True)
p.add_argument("--runs", required=True)
p.add_argument("--sizeguard-rev", default="unknown")
p.add_argument("--estimate", default="0")
a = p.parse_args()

rows = collections.OrderedDict()
for line in open(a.results):
    name, run, wall, user, sys_, rss, status, busy = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append(
        dict(run=int(run), wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss) / 1024, ok=status == "ok",
             status=status, busy=int(busy)))


def stat(name):
    rs = rows.get(name)
    if not rs:
        return None
    ok = all(r["ok"] for r in rs)
    return dict(median=statistics.median(r["wall"] for r in rs), min=min(r["wall"] for r in rs),
                cpu=statistics.median(r["cpu"] for r in rs), rss=max(r["rss"] for r in rs), ok=ok,
                status=",".join(sorted({r["status"] for r in rs if not r["ok"]})))


def load_json(name, run=1):
    try:
        with open(os.path.join(a.out, f"{name}.{run}.out")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def md(text):
    """Escape the pipes of shell pipelines inside a Markdown table cell."""
    return text.replace("\\|", "|").replace("|", "\\|")


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


# ------------------------------------------------------------------ machine
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem_kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
print("### Machine\n")
print(f"- {os.cpu_count()} cores (`nproc` {sh('nproc')}), {cpu}")
print(f"- RAM {mem_kib / (1 << 20):.1f} GiB, kernel {platform.release()}, {sh('. /etc/os-release && echo $PRETTY_NAME')}")
print(f"- date {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, sizeguard `{a.sizeguard_rev}`")
venv_py = os.path.join(os.path.dirname(a.cache.rstrip("/")), "venv", "bin", "python")
tools = [sh("curl --version | head -n1 | cut -d' ' -f1,2"), sh("gzip --version | head -n1"), sh("pigz --version 2>&1"),
         "isal " + sh(venv_py + " -c 'import isal; print(isal.__version__)'"), sh("skopeo --version"),
         sh("tar --version | head -n1"), "docker-registry " + sh("docker-registry --version | cut -d' ' -f3")]
print("- tools: " + ", ".join(tools))
allbusy = [r["busy"] for rs in rows.values() for r in rs]
if allbusy:
    print(f"- CPU busy in the second before each timed run (other processes): median {statistics.median(allbusy)}%, max {max(allbusy)}%")
print(f"- {a.runs} runs per configuration, round-robin; parallelism {a.jobs} (`--jobs {a.jobs}`, `xargs -P {a.jobs}`); "
      "the registry is on loopback and its blobs are in the page cache\n")

# ------------------------------------------------------------------ composition
names = {}
for d in glob.glob(os.path.join(a.cache, "*.tar.gz.digest")):
    names["sha256:" + open(d).read().split()[0]] = os.path.basename(d)[: -len(".tar.gz.digest")]
desc = {
    "base": "Debian bookworm minbase (debootstrap)",
    "cublas": "nvidia-cublas-cu12 wheel unzipped into /usr/local/lib/python3.11/site-packages",
    "app": "app: 300 small text files + a 3 MiB binary",
    "patch": "candidate's new layer: 2 files, ~1 MiB",
}
cold = load_json("measure cold")
small = load_json("measure cold, small image")
v2_layers = None
try:
    idx = json.load(open(os.path.join(a.layout, "v2", "index.json")))
    man = json.load(open(os.path.join(a.layout, "v2", "blobs", "sha256", idx["manifests"][0]["digest"].split(":")[1])))
    v2_layers = man["layers"]
except (OSError, ValueError, KeyError):
    pass
print("### Images\n")
if cold:
    img = cold["images"][0]
    print("| layer | compressed MiB | tar MiB | files | content |")
    print("|---|---:|---:|---:|---|")
    for l in img["layers"]:
        n = names.get(l["digest"], l["digest"][7:19])
        print(f"| `{n}` {l['digest'][7:19]} | {l['compressed_bytes'] / MIB:.1f} | {l['tar_bytes'] / MIB:.1f} | {l['files']} | {desc.get(n, '')} |")
    t = img["totals"]
    print(f"| **`app:v1`** ({len(img['layers'])} layers) | **{t['compressed_bytes'] / MIB:.1f}** | **{t['tar_bytes'] / MIB:.1f}** | {t['files']} | measured by `measure`, `--estimate`, the pipelines and skopeo + tar |")
    if v2_layers:
        extra = [l for l in v2_layers if l["digest"] not in {x["digest"] for x in img["layers"]}]
        print(f"| `app:v2` ({len(v2_layers)} layers) | {sum(l['size'] for l in v2_layers) / MIB:.1f} | | | v1 + `{', '.join(names.get(l['digest'], '?') for l in extra)}` ({sum(l['size'] for l in extra) / MIB:.2f} MiB compressed): the `check` candidate |")
if small:
    t = small["images"][0]["totals"]
    print(f"| `small:v1` ({len(small['images'][0]['layers'])} layers) | {t['compressed_bytes'] / MIB:.1f} | {t['tar_bytes'] / MIB:.1f} | {t['files']} | base + app: the small image for the memory comparison |")
print("\nAll layers are tar+gzip (pigz -6, one gzip member each).\n")

# ------------------------------------------------------------------ table
order = ["curl (fetch only)", "curl | gzip -dc", "curl | pigz -dc", REF, "measure cold", "measure warm",
         "check warm (1 new small layer)", "measure --estimate", "skopeo copy + tar -tvzf", "measure cold, small image"]
label = {
    "measure cold": "`sizeguard measure` cold (`--no-cache`)",
    "measure warm": "`sizeguard measure` warm (prewarmed cache)",
    "check warm (1 new small layer)": "`sizeguard check` v2 vs v1, warm (only the new small layer uncached)",
    "measure --estimate": "`sizeguard measure --estimate`",
    "measure cold, small image": "`sizeguard measure` cold, small image",
    "skopeo copy + tar -tvzf": "status quo: `skopeo copy` to dir + `tar -tvzf` each layer",
    "curl (fetch only)": "`curl` only (fetch, discard)",
    "curl | gzip -dc": "`curl | gzip -dc`",
    "curl | pigz -dc": "`curl | pigz -dc`",
    REF: "`curl | igzip -d` (ISA-L, `python -m isal.igzip -d -c`)",
}
ref = stat(REF)
print("### Timings\n")
print(f"| configuration | median s | min s | × {md('`curl | igzip -d`')} | CPU s (user+sys) | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
for name in order + [n for n in rows if n not in order]:
    s = stat(name)
    if s is None:
        if name == "measure --estimate":
            print(f"| {label[name]} | n/a | n/a | n/a | n/a | n/a |")
        continue
    ratio = f"{s['median'] / ref['median']:.2f}" if ref and ref["median"] > 0 else "?"
    bad = "" if s["ok"] else f" **FAILED ({s['status']})**"
    print(f"| {md(label.get(name, name))}{bad} | {s['median']:.2f} | {s['min']:.2f} | {ratio} | {s['cpu']:.2f} | {s['rss']:.1f} |")
print("\nPeak RSS of a pipeline row is that of its largest single process (`/usr/bin/time -v` reports the maximum over waited-for descendants, not their sum).\n")

# ------------------------------------------------------------------ targets
checks = []


def check(desc, ok, detail):
    checks.append((desc, ok if isinstance(ok, str) else ("PASS" if ok else "MISS"), detail))


mc, mw, cw = stat("measure cold"), stat("measure warm"), stat("check warm (1 new small layer)")
sq, ms, est = stat("skopeo copy + tar -tvzf"), stat("measure cold, small image"), stat("measure --estimate")
pz, gz = stat("curl | pigz -dc"), stat("curl | gzip -dc")
if mc and ref:
    check("cold `measure` ≤ 1.0× `curl | igzip -d`", mc["ok"] and mc["median"] <= ref["median"],
          f"{mc['median']:.2f} s vs {ref['median']:.2f} s = {mc['median'] / ref['median']:.2f}×"
          + (f" (pigz: {mc['median'] / pz['median']:.2f}×, gzip: {mc['median'] / gz['median']:.2f}×)" if pz and gz else ""))
if mc and sq:
    check("cold `measure` ≥ 5× faster than skopeo + tar", mc["ok"] and sq["median"] >= 5 * mc["median"],
          f"{sq['median']:.2f} s / {mc['median']:.2f} s = {sq['median'] / mc['median']:.1f}×")
if mc and mw:
    check("warm `measure` < 5% of cold", mw["ok"] and mw["median"] < 0.05 * mc["median"],
          f"{mw['median']:.3f} s = {100 * mw['median'] / mc['median']:.1f}% of cold")
if mc and cw:
    check("warm `check` (one new small layer) < 5% of cold `measure`", cw["ok"] and cw["median"] < 0.05 * mc["median"],
          f"{cw['median']:.3f} s = {100 * cw['median'] / mc['median']:.1f}% of cold")
if mc and ms:
    check("peak RSS < 64 MiB, ~1 GB image", mc["rss"] < 64, f"{mc['rss']:.1f} MiB")
    check("peak RSS < 64 MiB, small image", ms["rss"] < 64, f"{ms['rss']:.1f} MiB")
    check("peak RSS flat in image size (1 GB image within 25% of the small one)", mc["rss"] <= 1.25 * ms["rss"],
          f"{mc['rss']:.1f} vs {ms['rss']:.1f} MiB")
if a.estimate != "1":
    check("`--estimate` < 0.2 s", "n/a", "sizeguard has no `--estimate` flag yet")
    check("`--estimate` tar_bytes exact per layer", "n/a", "sizeguard has no `--estimate` flag yet")
elif est:
    check("`--estimate` < 0.2 s", est["ok"] and est["median"] < 0.2, f"{est['median']:.3f} s")
    ej = load_json("measure --estimate")
    if cold and ej:
        exact = {l["digest"]: l.get("tar_bytes") for l in cold["images"][0]["layers"]}
        got = {l["digest"]: l.get("tar_bytes") for l in ej["images"][0]["layers"]}
        diffs = [f"{names.get(d, d[7:19])}: {got.get(d)} vs {v}" for d, v in exact.items() if got.get(d) != v]
        check("`--estimate` tar_bytes exact per layer", not diffs, "all layers exact" if not diffs else "; ".join(diffs))
    else:
        check("`--estimate` tar_bytes exact per layer", False, "no JSON output to compare")

# Sanity: warm figures equal cold ones; status quo total vs content_bytes.
if cold:
    strip = lambda j: json.dumps([{k: v for k, v in l.items()} for l in j["images"][0]["layers"]], sort_keys=True)
    w = load_json("measure warm")
    if w:
        check("(sanity) warm `measure` figures identical to cold", strip(w) == strip(cold), "per-layer JSON compared")
    try:
        total = int(open(os.path.join(a.out, "skopeo copy + tar -tvzf.1.out")).read().split()[0])
        cb = cold["images"][0]["totals"]["content_bytes"]
        check("(info) skopeo + tar size sum vs sizeguard content_bytes", "info",
              f"{total} vs {cb} (tar -tv counts hard links as 0 and device numbers as sizes)")
    except (OSError, ValueError, IndexError):
        pass

print("### Speed targets\n")
print("| target | result | figures |")
print("|---|---|---|")
for d, r, detail in checks:
    print(f"| {md(d)} | {r} | {md(detail)} |")
