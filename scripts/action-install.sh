#!/usr/bin/env bash
# The install step of action.yml: puts `sizeguard` on PATH, fast, and only
# the sizeguard the workflow pinned.
#
# Which binary:
# - `version` input, or the action used at a release tag (@v1.2.3): that
#   release, explicitly. Its binary for this runner is downloaded and checked
#   against the sha256 this action carries in its `checksums` file (written
#   by release.yml). No carried checksum, a failed download or a mismatch is
#   an error: never a silent build of some other code.
# - a moving tag (@v1, @v1.2) or a commit SHA: the version in the action's
#   Cargo.toml, when the action carries that release's checksums (release.yml
#   moves the major tag to the commit that adds them; a later commit is taken
#   for that release until Cargo.toml's version changes). Then as above,
#   errors included.
# - otherwise (a branch, a commit that is no release, a local `uses: ./`):
#   the action's own source, `cargo install --locked`.
#
# Environment: ACTION_PATH (the action's checkout), ACTION_REF, ACTION_REPO,
# INPUT_VERSION, RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_SERVER_URL,
# GITHUB_PATH, GITHUB_OUTPUT.
# Exit: 0 installed; 3 the pinned release could not be installed.
set -euo pipefail

action_path="${ACTION_PATH:-${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}}"
repo="${ACTION_REPO:-${GITHUB_ACTION_REPOSITORY:-}}"
server="${GITHUB_SERVER_URL:-https://github.com}"
dest="${RUNNER_TEMP:-/tmp}/sizeguard-bin"
build="${RUNNER_TEMP:-/tmp}/sizeguard-build"
out="${GITHUB_OUTPUT:-/dev/null}"
ref="${ACTION_REF:-}"

fail() {
  echo "::error title=sizeguard::$1"
  exit 3
}

target=""
case "${RUNNER_OS:-$(uname -s)}:${RUNNER_ARCH:-$(uname -m)}" in
  Linux:X64 | Linux:x86_64) target=x86_64-unknown-linux-musl ;;
  Linux:ARM64 | Linux:aarch64) target=aarch64-unknown-linux-musl ;;
  macOS:X64 | Darwin:x86_64) target=x86_64-apple-darwin ;;
  macOS:ARM64 | Darwin:arm64) target=aarch64-apple-darwin ;;
esac

# The sha256 the action carries for a release and target, if any.
carried() {
  [ -f "$action_path/checksums" ] || return 0
  awk -v v="$1" -v t="$2" '$1 == v && $2 == t { print $3; exit }' "$action_path/checksums"
}

# The release tag asked for, and whether the user named it (explicit).
tag=""
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$action_path/Cargo.toml" | head -n1)"
if [ -n "${INPUT_VERSION:-}" ]; then
  tag="$INPUT_VERSION"
  if [ "${tag#v}" = "$tag" ]; then tag="v$tag"; fi
elif [[ "$ref" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  tag="$ref"
elif [[ "$ref" =~ ^v[0-9]+(\.[0-9]+)?$ ]] || [[ "$ref" =~ ^[0-9a-f]{40}$ ]]; then
  # A moving tag or a commit: a release when it carries its checksums.
  if [ -n "$version" ] && [ -n "$target" ] && [ -n "$(carried "v$version" "$target")" ]; then
    case "$ref" in
      v*) [ "v${version%%.*}" = "${ref%%.*}" ] && tag="v$version" ;;
      *) tag="v$version" ;;
    esac
  fi
fi

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

install_release() {
  [ -n "$target" ] || fail "sizeguard $tag has no release binary for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}"
  [ -n "$repo" ] || fail "sizeguard $tag: the action's repository is unknown (github.action_repository)"
  local want
  want="$(carried "$tag" "$target")"
  [ -n "$want" ] || fail "sizeguard $tag/$target: this action carries no checksum for it (checksums file); pin a release the action lists, or a branch to build from source"
  local asset="sizeguard-$target.tar.gz"
  local url="$server/$repo/releases/download/$tag/$asset"
  local work
  work="$(mktemp -d)"
  echo "downloading $url"
  curl -fsL --retry 3 -o "$work/$asset" "$url" ||
    fail "sizeguard $tag/$target could not be downloaded from $url"
  local got
  got="$(sha256 "$work/$asset")"
  [ "$want" = "$got" ] ||
    fail "$asset: sha256 $got is not the $want this action carries for $tag"
  mkdir -p "$dest"
  tar -xzf "$work/$asset" -C "$dest" sizeguard
  chmod +x "$dest/sizeguard"
  rm -rf "$work"
}

install_source() {
  if ! command -v cargo >/dev/null 2>&1; then
    fail "no release binary for ref '${ref:-local}' and no cargo to build one (add dtolnay/rust-toolchain before this step, or use a release tag)"
  fi
  # ISA-L builds with autotools (and nasm on x86_64); without them, the
  # pure-Rust inflate, slower on gzip layers but the same figures.
  local features=()
  if ! command -v autoreconf >/dev/null 2>&1 ||
    { [ "$(uname -m)" = x86_64 ] && ! command -v nasm >/dev/null 2>&1; }; then
    echo "::notice title=sizeguard::no nasm/autotools on this runner: building the pure-Rust inflate (scripts/install-deps.sh --build installs ISA-L's build tools)"
    features=(--no-default-features --features pure-rust)
  fi
  echo "building sizeguard from $action_path (cargo install --locked)"
  cargo install --locked --quiet --path "$action_path" --root "$build" ${features[@]+"${features[@]}"}
  mkdir -p "$dest"
  cp "$build/bin/sizeguard" "$dest/sizeguard"
}

if [ -n "$tag" ]; then
  install_release
else
  install_source
fi

echo "$dest" >>"${GITHUB_PATH:-/dev/null}"
echo "path=$dest/sizeguard" >>"$out"
"$dest/sizeguard" --version
