#!/usr/bin/env bash
# Lower bound for a streaming measurer: fetch every blob listed in URLS (one
# URL a line, largest first) with curl, JOBS at a time, and pipe each through
# INFLATE... with the output discarded. INFLATE "none" only fetches.
#   fetch_inflate.sh JOBS URLS INFLATE [ARGS...]
set -euo pipefail
jobs=$1 urls=$2
shift 2
if [ "$1" = none ]; then
  xargs -P "$jobs" -n 1 curl -sSf -o /dev/null < "$urls"
else
  # shellcheck disable=SC2016 # $1 and $INFLATE expand in the inner bash
  INFLATE="$*" xargs -P "$jobs" -n 1 bash -c 'set -o pipefail; curl -sSf "$1" | $INFLATE > /dev/null' _ < "$urls"
fi
