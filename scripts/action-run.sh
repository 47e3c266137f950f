#!/usr/bin/env bash
# The guard step of action.yml: `sizeguard check` with the action's inputs,
# the JSON report, the pull-request comment, and the exit code `fail-on`
# asks for. Inputs arrive as INPUT_* environment variables (never
# interpolated into this script: no script injection); the binary is
# $SIZEGUARD_BIN or `sizeguard` on PATH.
#
# Exit: 0 when the verdict is acceptable under fail-on, 1 when it is not,
# 2/3 when sizeguard could not check (bad input, unmeasurable image) —
# whatever fail-on says. A comment that cannot be posted because of the
# workflow's configuration (a same-repository pull request whose token lacks
# `pull-requests: write`, a rejected token) fails the step with exit 2; a
# fork's read-only token is a notice, and an unreachable API a warning.
set -euo pipefail

# The report's top-level verdict, read as JSON (every runner has python3),
# and only when it is one of the three: a report may come from a pull
# request's workflow, and whatever it holds is written to $GITHUB_OUTPUT.
report_verdict() {
  python3 -c '
import json, sys
try:
    v = json.load(open(sys.argv[1], encoding="utf-8"))["verdict"]
except Exception:
    sys.exit(1)
if v not in ("pass", "warn", "fail"):
    sys.exit(1)
print(v)' "$1" 2>/dev/null
}

bin="${SIZEGUARD_BIN:-sizeguard}"
tmp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
report="${INPUT_REPORT_PATH:-$tmp/sizeguard-report.json}"
out="${GITHUB_OUTPUT:-/dev/null}"

# One step output. A value with a line break is written in the documented
# NAME<<DELIMITER form, with a random delimiter checked not to occur in it,
# so no value can end its entry and write outputs of its own.
set_output() {
  local name="$1" value="$2" delimiter
  case "$value" in
    *$'\n'* | *$'\r'*)
      delimiter="ghadelimiter_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
      case "$value" in
        *"$delimiter"*)
          echo "::error title=sizeguard::output $name: its value contains the random delimiter"
          exit 2
          ;;
      esac
      printf '%s<<%s\n%s\n%s\n' "$name" "$delimiter" "$value" "$delimiter" >>"$out"
      ;;
    *) printf '%s=%s\n' "$name" "$value" >>"$out" ;;
  esac
}

# The comment's footer links the README of the sizeguard the workflow
# pinned (the action's repository at its ref).
docs_url() {
  if [ -n "${ACTION_REPO:-}" ] && [ -n "${ACTION_REF:-}" ]; then
    export SIZEGUARD_DOCS_URL="${GITHUB_SERVER_URL:-https://github.com}/$ACTION_REPO/blob/$ACTION_REF/README.md#reading-the-comment"
  fi
}

# `report` mode: post a report made elsewhere (the workflow_run half of
# the fork pattern) instead of checking. That report is untrusted: sizeguard
# validates it (`comment --mode never` reads it and posts nothing) before
# anything of it becomes an output, and renders the comment itself.
if [ -n "${INPUT_REPORT:-}" ]; then
  if [ ! -s "$INPUT_REPORT" ]; then
    echo "::error title=sizeguard::report $INPUT_REPORT does not exist or is empty"
    exit 2
  fi
  rc=0
  "$bin" comment --report "$INPUT_REPORT" --mode never </dev/null || rc=$?
  if [ "$rc" -eq 0 ] && ! verdict="$(report_verdict "$INPUT_REPORT")"; then
    echo "::error title=sizeguard::report $INPUT_REPORT is not a sizeguard check report"
    rc=2
  fi
  if [ "$rc" -ne 0 ]; then
    set_output verdict error
    exit $((rc >= 2 ? rc : 2))
  fi
  set_output verdict "$verdict"
  set_output report-path "$INPUT_REPORT"
  mode="${INPUT_COMMENT:-always}"
  [ "$mode" = never ] && exit 0
  docs_url
  GITHUB_TOKEN="${INPUT_GITHUB_TOKEN:-${GITHUB_TOKEN:-}}" \
    exec "$bin" comment --report "$INPUT_REPORT" --mode "$mode" </dev/null
fi

if [ -z "${INPUT_CANDIDATE:-}" ]; then
  echo "::error title=sizeguard::the candidate input is required (or report, to post an existing report)"
  exit 2
fi

case "${INPUT_FAIL_ON:-fail}" in
  fail | warn | never) ;;
  *)
    echo "::error title=sizeguard::fail-on must be fail, warn or never (got '${INPUT_FAIL_ON}')"
    exit 2
    ;;
esac

# The comment mode: the input, else `always` on pull requests, else never.
mode="${INPUT_COMMENT:-}"
if [ -z "$mode" ]; then
  case "${GITHUB_EVENT_NAME:-}" in
    pull_request | pull_request_target) mode=always ;;
    *) mode=never ;;
  esac
fi
case "$mode" in
  always | on-change | on-failure | never) ;;
  *)
    echo "::error title=sizeguard::comment must be always, on-change, on-failure or never (got '$mode')"
    exit 2
    ;;
esac

# Attach the report: the input, else only for pushes to the default
# branch (the releases a history is made of; a pull request's image is
# not one, and its token may not push).
attach="${INPUT_ATTACH:-}"
if [ -z "$attach" ]; then
  attach=false
  if [ "${GITHUB_EVENT_NAME:-}" = push ] && [ -n "${GITHUB_EVENT_PATH:-}" ]; then
    default_branch="$(python3 -c '
import json, sys
try:
    b = json.load(open(sys.argv[1], encoding="utf-8"))["repository"]["default_branch"]
except Exception:
    sys.exit(0)
if isinstance(b, str):
    print(b)' "$GITHUB_EVENT_PATH" 2>/dev/null || true)"
    if [ -n "$default_branch" ] && [ "${GITHUB_REF:-}" = "refs/heads/$default_branch" ]; then
      attach=true
    fi
  fi
fi
case "$attach" in
  true | false) ;;
  *)
    echo "::error title=sizeguard::attach must be true or false (got '$attach')"
    exit 2
    ;;
esac
trend="${INPUT_TREND:-10}"
case "$trend" in
  '' | *[!0-9]*)
    echo "::error title=sizeguard::trend must be a number of releases, 0 for none (got '$trend')"
    exit 2
    ;;
esac

args=(check --candidate "$INPUT_CANDIDATE" --format json -o "$report" --quiet --trend "$trend")
[ "$attach" = true ] && args+=(--attach)
[ -n "${INPUT_TREND_TAGS:-}" ] && args+=(--trend-tags "$INPUT_TREND_TAGS")
[ -n "${INPUT_BASELINE:-}" ] && args+=(--baseline "$INPUT_BASELINE")
[ "${INPUT_BASELINE_OPTIONAL:-false}" = "true" ] && args+=(--baseline-optional)
[ -n "${INPUT_CONFIG:-}" ] && args+=(--config "$INPUT_CONFIG")
[ -n "${INPUT_PLATFORM:-}" ] && args+=(--platform "$INPUT_PLATFORM")
[ -n "${INPUT_NODE_CAPACITY:-}" ] && args+=(--node-capacity "$INPUT_NODE_CAPACITY")
[ -n "${INPUT_NODE_AVAILABLE:-}" ] && args+=(--node-available "$INPUT_NODE_AVAILABLE")
[ -n "${INPUT_NODE_STATS:-}" ] && args+=(--node-stats "$INPUT_NODE_STATS")
# Inputs named like the flags they set: one value each, given as it is.
add_flag() {
  if [ -n "$2" ]; then args+=("--$1" "$2"); fi
}
add_flag node-used "${INPUT_NODE_USED:-}"
add_flag node-profile "${INPUT_NODE_PROFILE:-}"
add_flag runtime "${INPUT_RUNTIME:-}"
add_flag gc-high "${INPUT_GC_HIGH:-}"
add_flag gc-low "${INPUT_GC_LOW:-}"
add_flag eviction-imagefs-available "${INPUT_EVICTION_IMAGEFS_AVAILABLE:-}"
add_flag eviction-imagefs-inodes-free "${INPUT_EVICTION_IMAGEFS_INODES_FREE:-}"
add_flag max-pull-size "${INPUT_MAX_PULL_SIZE:-}"
add_flag warn-pull-size "${INPUT_WARN_PULL_SIZE:-}"
add_flag max-unpacked-size "${INPUT_MAX_UNPACKED_SIZE:-}"
add_flag warn-unpacked-size "${INPUT_WARN_UNPACKED_SIZE:-}"
add_flag max-layer-size "${INPUT_MAX_LAYER_SIZE:-}"
add_flag warn-layer-size "${INPUT_WARN_LAYER_SIZE:-}"
add_flag max-layers "${INPUT_MAX_LAYERS:-}"
add_flag warn-layers "${INPUT_WARN_LAYERS:-}"
add_flag max-wasted "${INPUT_MAX_WASTED:-}"
add_flag warn-wasted "${INPUT_WARN_WASTED:-}"
# Growth limits: one per line (or comma-separated). Bash 3 compatible (macOS).
add_limits() {
  local flag="$1" limit
  while IFS= read -r limit; do
    limit="$(printf '%s' "$limit" | tr -d '[:space:]')"
    if [ -n "$limit" ]; then args+=("$flag" "$limit"); fi
  done < <(printf '%s\n' "$2" | tr ',' '\n')
}
add_limits --max-growth "${INPUT_MAX_GROWTH:-}"
add_limits --warn-growth "${INPUT_WARN_GROWTH:-}"

# `args`: more flags for `sizeguard check`, split as a POSIX shell would
# split words (quotes, backslashes) by Python's shlex, which evaluates
# nothing: no expansion, no substitution, no globbing. The report's format
# and file are the action's own.
if [ -n "${INPUT_ARGS:-}" ]; then
  if ! python3 -c 'import shlex, sys; shlex.split(sys.argv[1])' "$INPUT_ARGS" 2>/dev/null; then
    echo "::error title=sizeguard::args: cannot be split into words (an unclosed quote?)"
    exit 2
  fi
  extra=()
  while IFS= read -r -d '' word; do extra+=("$word"); done < <(
    python3 -c '
import shlex, sys
for w in shlex.split(sys.argv[1]):
    sys.stdout.write(w + "\0")' "$INPUT_ARGS"
  )
  for word in ${extra[@]+"${extra[@]}"}; do
    case "$word" in
      --format | --format=* | -o | -o* | --output | --output=* | --comment | --comment=*)
        echo "::error title=sizeguard::args: $word is set by the action (the JSON report and the comment are its own)"
        exit 2
        ;;
    esac
  done
  args+=(${extra[@]+"${extra[@]}"})
fi

# The layer cache: private to the job's user (an empty directory made here
# is marked as sizeguard's by sizeguard, with a CACHEDIR.TAG; it refuses a
# directory holding anything else).
if [ "${INPUT_CACHE:-true}" = "true" ] && [ -n "${INPUT_CACHE_DIR:-}" ]; then
  export SIZEGUARD_CACHE_DIR="$INPUT_CACHE_DIR"
  (umask 077 && mkdir -p "$SIZEGUARD_CACHE_DIR")
fi

# `registry-token`: credentials for one registry (ghcr.io by default), in a
# file of Docker's config format that only sizeguard reads
# (REGISTRY_AUTH_FILE, consulted before the Docker config that
# docker/login-action writes, which is read as well). Created 0600 under
# RUNNER_TEMP, removed when the step ends, never printed.
auth_dir=""
trap '[ -z "$auth_dir" ] || rm -rf "$auth_dir"' EXIT
if [ -n "${INPUT_REGISTRY_TOKEN:-}" ]; then
  if [ -z "${INPUT_REGISTRY_USERNAME:-}" ]; then
    echo "::error title=sizeguard::registry-token needs registry-username (default: github.actor)"
    exit 2
  fi
  auth_dir="$(umask 077 && mktemp -d "$tmp/sizeguard-auth.XXXXXX")"
  (
    umask 077
    SG_USER="$INPUT_REGISTRY_USERNAME" SG_TOKEN="$INPUT_REGISTRY_TOKEN" \
      SG_HOST="${INPUT_REGISTRY:-ghcr.io}" python3 -c '
import base64, json, os, sys
user, token, host = os.environ["SG_USER"], os.environ["SG_TOKEN"], os.environ["SG_HOST"]
auth = base64.b64encode(("%s:%s" % (user, token)).encode()).decode()
json.dump({"auths": {host: {"auth": auth}}}, open(sys.argv[1], "w"))' "$auth_dir/auth.json"
  ) < /dev/null
  export REGISTRY_AUTH_FILE="$auth_dir/auth.json"
fi

rc=0
# `registry-password` goes to one registry: `registry`, else sizeguard's
# default, the candidate's registry (never one a policy file names).
if [ -n "${INPUT_REGISTRY_USERNAME:-}" ] && [ -n "${INPUT_REGISTRY_PASSWORD:-}" ]; then
  args+=(--username "$INPUT_REGISTRY_USERNAME" --password-stdin)
  [ -n "${INPUT_REGISTRY:-}" ] && args+=(--registry "$INPUT_REGISTRY")
  printf '%s' "$INPUT_REGISTRY_PASSWORD" | "$bin" "${args[@]}" || rc=$?
else
  "$bin" "${args[@]}" </dev/null || rc=$?
fi

if [ "$rc" -ge 2 ] || [ ! -s "$report" ]; then
  echo "::error title=sizeguard::sizeguard could not check the image (exit $rc); see the error above"
  set_output verdict error
  exit $((rc >= 2 ? rc : 3))
fi
set_output report-path "$report"

if ! verdict="$(report_verdict "$report")"; then
  echo "::error title=sizeguard::$report is not a sizeguard check report"
  set_output verdict error
  exit 3
fi

# Layer-cache key: the digests the report names, so unchanged images reuse it.
if [ -n "${SIZEGUARD_CACHE_DIR:-}" ]; then
  if command -v sha256sum >/dev/null 2>&1; then sum=(sha256sum); else sum=(shasum -a 256); fi
  key="$(grep -o 'sha256:[0-9a-f]\{64\}' "$report" | sort -u | "${sum[@]}" | cut -c1-32)"
  set_output cache-key "sizeguard-layers-${RUNNER_OS:-$(uname -s)}-$key"
fi

# Bounded before actions/cache saves it: the cache then holds what recent
# images share (the least recently used entries go first).
if [ -n "${SIZEGUARD_CACHE_DIR:-}" ] && [ -n "${INPUT_CACHE_MAX_SIZE:-}" ]; then
  "$bin" cache prune --max-size "$INPUT_CACHE_MAX_SIZE" </dev/null ||
    echo "::warning title=sizeguard::the layer cache could not be pruned to $INPUT_CACHE_MAX_SIZE"
fi

if [ "$mode" != "never" ]; then
  docs_url
  crc=0
  GITHUB_TOKEN="${INPUT_GITHUB_TOKEN:-${GITHUB_TOKEN:-}}" \
    "$bin" comment --report "$report" --mode "$mode" </dev/null || crc=$?
  if [ "$crc" -eq 2 ]; then
    # The workflow's configuration (a missing permission, a rejected
    # token): fixing it is the user's, and a guard that silently loses its
    # comment would look green.
    exit 2
  elif [ "$crc" -ne 0 ]; then
    echo "::warning title=sizeguard::the pull-request comment was not posted (see above); the report is in the step summary and at $report"
  fi
fi

case "$verdict:${INPUT_FAIL_ON:-fail}" in
  fail:fail | fail:warn | warn:warn) exit 1 ;;
  *) exit 0 ;;
esac
