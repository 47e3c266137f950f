#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the test dependencies when
# missing, then formatting, lints, and every test (unit and integration,
# the latter against a real registry started per test).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The streaming tests write images of a few hundred MB in several forms;
# when a shared disk runs short they fail with ENOSPC, and this line in
# the log says why.
df -h . "${TMPDIR:-/tmp}"
cargo fmt --all -- --check
# Both builds: the default (ISA-L's inflate, built from vendored source, and
# the server) and the pure-Rust one for targets where ISA-L cannot build,
# which is also the command line without the server: between them every
# `cfg` of either feature is compiled and linted once, and no third build
# is needed.
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --no-default-features --features pure-rust -- -D warnings
# The workflows, the examples and (through ci.yml's `uses: ./`) action.yml;
# the scripts the action runs.
actionlint .github/workflows/*.yml examples/github/*.yml
shellcheck scripts/action-*.sh
# Every test with the default build (ISA-L's inflate, the server), then the
# streaming tests again in the pure-Rust build (zlib-rs, no server), so both
# stay correct.
cargo test --locked --all-targets
cargo test --locked --no-default-features --features pure-rust --lib
cargo test --locked --no-default-features --features pure-rust --test integration -- ground_truth:: registry::
# Without the server feature: no database driver in the tree, and no
# `serve` subcommand in the binary (clap refuses it: exit 2). The tree is
# read whole before it is searched, so a pipe closed early cannot hide a
# match.
pure_rust_tree=$(cargo tree --locked --no-default-features --features pure-rust -e normal --prefix none)
if grep -qw sqlx <<<"$pure_rust_tree"; then
  echo "the pure-Rust build depends on sqlx: the server is not optional" >&2
  exit 1
fi
cargo build --locked --no-default-features --features pure-rust
serve_rc=0
target/debug/sizeguard serve --help >/dev/null 2>&1 || serve_rc=$?
if [ "$serve_rc" -ne 2 ]; then
  echo "the pure-Rust build's \`sizeguard serve --help\` exited $serve_rc, not 2 (no such subcommand)" >&2
  exit 1
fi
