#!/usr/bin/env bash
# The guard step of action.yml: `sizeguard check` with the action's inputs,
# the JSON report, the pull-request comment, and the exit code `fail-on`
# asks for. Inputs arrive as INPUT_* environment variables (never
# interpolated into this script: no script injection); the binary is
# $SIZEGUARD_BIN or `sizeguard` on PATH.
#
# Exit: 0 when the verdict is acceptable under fail-on, 1 when it is not,
# 2/3 when sizeguard could not check (bad input, unmeasurable image) —
# whatever fail-on says. A comment that cannot be posted never fails the step.
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

args=(check --candidate "$INPUT_CANDIDATE" --format json -o "$report" --quiet)
[ -n "${INPUT_BASELINE:-}" ] && args+=(--baseline "$INPUT_BASELINE")
[ "${INPUT_BASELINE_OPTIONAL:-false}" = "true" ] && args+=(--baseline-optional)
[ -n "${INPUT_CONFIG:-}" ] && args+=(--config "$INPUT_CONFIG")
[ -n "${INPUT_PLATFORM:-}" ] && args+=(--platform "$INPUT_PLATFORM")
[ -n "${INPUT_NODE_CAPACITY:-}" ] && args+=(--node-capacity "$INPUT_NODE_CAPACITY")
[ -n "${INPUT_NODE_AVAILABLE:-}" ] && args+=(--node-available "$INPUT_NODE_AVAILABLE")
[ -n "${INPUT_NODE_STATS:-}" ] && args+=(--node-stats "$INPUT_NODE_STATS")
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

if [ "${INPUT_CACHE:-true}" = "true" ] && [ -n "${INPUT_CACHE_DIR:-}" ]; then
  export SIZEGUARD_CACHE_DIR="$INPUT_CACHE_DIR"
  mkdir -p "$SIZEGUARD_CACHE_DIR"
fi

rc=0
if [ -n "${INPUT_REGISTRY_USERNAME:-}" ] && [ -n "${INPUT_REGISTRY_PASSWORD:-}" ]; then
  args+=(--username "$INPUT_REGISTRY_USERNAME" --password-stdin)
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

if [ "$mode" != "never" ]; then
  if ! GITHUB_TOKEN="${INPUT_GITHUB_TOKEN:-${GITHUB_TOKEN:-}}" \
    "$bin" comment --report "$report" --mode "$mode" </dev/null; then
    echo "::warning title=sizeguard::the pull-request comment was not posted (see above); the report is in the step summary and at $report"
  fi
fi

case "$verdict:${INPUT_FAIL_ON:-fail}" in
  fail:fail | fail:warn | warn:warn) exit 1 ;;
  *) exit 0 ;;
esac
