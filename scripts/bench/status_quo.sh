#!/usr/bin/env bash
# The status quo this project replaces: copy the image to a directory with
# skopeo, then list every layer with `tar -tvzf` and add up the member sizes.
# Prints the total of the tar listings' size column (content bytes, hard links
# counted as 0).
#   status_quo.sh docker://HOST:PORT/REPO:TAG DIR
set -euo pipefail
ref=$1 dir=$2
skopeo copy -q --insecure-policy --src-tls-verify=false "$ref" "dir:$dir"
total=0
for digest in $(python3 -c 'import json,sys; print("\n".join(l["digest"] for l in json.load(open(sys.argv[1]))["layers"]))' "$dir/manifest.json"); do
  n=$(tar -tvzf "$dir/${digest#sha256:}" | awk '{ s += $3 } END { printf "%d", s }')
  total=$((total + n))
done
echo "$total"
