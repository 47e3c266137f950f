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
# Both builds: the default (ISA-L's inflate, built from vendored source) and
# the pure-Rust one for targets where ISA-L cannot build.
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --no-default-features --features pure-rust -- -D warnings
# The workflows, the examples and (through ci.yml's `uses: ./`) action.yml;
# the scripts the action runs.
actionlint .github/workflows/*.yml examples/github/*.yml
shellcheck scripts/action-*.sh
# Every test with the default build (ISA-L's inflate), then the streaming
# tests again in the pure-Rust build (zlib-rs), so both stay correct.
cargo test --locked --all-targets
cargo test --locked --no-default-features --features pure-rust --lib
cargo test --locked --no-default-features --features pure-rust --test integration -- ground_truth:: registry::
