#!/usr/bin/env python3
"""Write a one-image OCI image layout from prebuilt tar+gzip layer blobs.

usage: oci_layout.py OUT_DIR TAG LAYER.tar.gz [LAYER.tar.gz ...]

Each LAYER.tar.gz must have LAYER.tar.gz.digest (sha256 hex of the blob) and
LAYER.tar.gz.diffid (sha256 hex of the uncompressed tar) next to it. Blobs are
hard-linked into OUT_DIR/blobs/sha256 (copied across file systems). OUT_DIR is
replaced.
"""
import hashlib
import json
import os
import shutil
import sys


def put_blob(out, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)


def main():
    out, tag, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    descs, diff_ids, history = [], [], []
    for path in layers:
        with open(path + ".digest") as f:
            hexd = f.read().split()[0]
        with open(path + ".diffid") as f:
            diff_ids.append("sha256:" + f.read().split()[0])
        dst = os.path.join(out, "blobs", "sha256", hexd)
        try:
            os.link(path, dst)
        except OSError:
            shutil.copyfile(path, dst)
        descs.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + hexd,
            "size": os.path.getsize(path),
        })
        history.append({"created": "2024-01-01T00:00:00Z",
                        "created_by": "scripts/bench.sh: " + os.path.basename(path)})
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cdig, csize = put_blob(out, json.dumps(config, indent=2).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdig, "size": csize},
        "layers": descs,
    }
    mdig, msize = put_blob(out, json.dumps(manifest, indent=2).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdig, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
