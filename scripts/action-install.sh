#!/usr/bin/env bash
# The install step of action.yml: puts `sizeguard` on PATH, fast.
#
# At a release tag (the action used as owner/sizeguard@v1.2.3, or the
# `version` input) it downloads the prebuilt binary for the runner's OS and
# architecture from that GitHub release and checks it against the published
# sha256. Otherwise (a branch, a commit, a local `uses: ./`) it builds the
# action's own source with `cargo install --locked`.
#
# Environment: ACTION_PATH (the action's checkout), ACTION_REF, ACTION_REPO,
# INPUT_VERSION, RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_SERVER_URL,
# GITHUB_PATH, GITHUB_OUTPUT.
set -euo pipefail

action_path="${ACTION_PATH:-${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}}"
repo="${ACTION_REPO:-${GITHUB_ACTION_REPOSITORY:-}}"
server="${GITHUB_SERVER_URL:-https://github.com}"
dest="${RUNNER_TEMP:-/tmp}/sizeguard-bin"
build="${RUNNER_TEMP:-/tmp}/sizeguard-build"
out="${GITHUB_OUTPUT:-/dev/null}"

# The release tag: the version input (latest is not guessed), else the
# action's ref when it looks like a release.
tag="${INPUT_VERSION:-}"
if [ -n "$tag" ] && [ "${tag#v}" = "$tag" ]; then tag="v$tag"; fi
if [ -z "$tag" ] && [[ "${ACTION_REF:-}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  tag="$ACTION_REF"
elif [ -z "$tag" ] && [[ "${ACTION_REF:-}" =~ ^v[0-9]+(\.[0-9]+)?$ ]]; then
  # A moving major tag (@v1): the release of the version it points at.
  version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$action_path/Cargo.toml" | head -n1)"
  if [ "v${version%%.*}" = "${ACTION_REF%%.*}" ]; then tag="v$version"; fi
fi

target=""
case "${RUNNER_OS:-$(uname -s)}:${RUNNER_ARCH:-$(uname -m)}" in
  Linux:X64 | Linux:x86_64) target=x86_64-unknown-linux-musl ;;
  Linux:ARM64 | Linux:aarch64) target=aarch64-unknown-linux-musl ;;
  macOS:X64 | Darwin:x86_64) target=x86_64-apple-darwin ;;
  macOS:ARM64 | Darwin:arm64) target=aarch64-apple-darwin ;;
esac

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

install_release() {
  local asset="sizeguard-$target.tar.gz"
  local url="$server/$repo/releases/download/$tag/$asset"
  local work
  work="$(mktemp -d)"
  echo "downloading $url"
  curl -fsSL --retry 3 -o "$work/$asset" "$url" || return 1
  curl -fsSL --retry 3 -o "$work/$asset.sha256" "$url.sha256" || return 1
  local want got
  want="$(cut -d' ' -f1 <"$work/$asset.sha256" | tr -d '[:space:]')"
  got="$(sha256 "$work/$asset")"
  if [ "$want" != "$got" ]; then
    echo "::error title=sizeguard::$asset: sha256 $got does not match the published $want"
    exit 3
  fi
  mkdir -p "$dest"
  tar -xzf "$work/$asset" -C "$dest"
  chmod +x "$dest/sizeguard"
  rm -rf "$work"
}

install_source() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "::error title=sizeguard::no release binary for this runner and no cargo to build one (add dtolnay/rust-toolchain before this step, or use a release tag)"
    exit 3
  fi
  echo "building sizeguard from $action_path (cargo install --locked)"
  cargo install --locked --quiet --path "$action_path" --root "$build"
  mkdir -p "$dest"
  cp "$build/bin/sizeguard" "$dest/sizeguard"
}

if [ -n "$tag" ] && [ -n "$target" ] && [ -n "$repo" ]; then
  if ! install_release; then
    echo "::warning title=sizeguard::no release binary $tag/$target could be downloaded; building from source"
    install_source
  fi
else
  install_source
fi

echo "$dest" >>"${GITHUB_PATH:-/dev/null}"
echo "path=$dest/sizeguard" >>"$out"
"$dest/sizeguard" --version
