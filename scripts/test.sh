#!/usr/bin/env bash
# Every check, as CI runs it: formatting, lints, Rust unit and integration
# tests, the dependency rule for the library, and the C ABI under
# AddressSanitizer and valgrind. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v gcc >/dev/null || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --quiet --workspace --all-targets -- -D warnings

step "the library links no server code"
if cargo tree -p azbatch -e normal --prefix none | grep -E '^(axum|azbatch-emulator) '; then
  echo "the azbatch library must not depend on server code" >&2
  exit 1
fi
echo "ok"

step "C ABI under AddressSanitizer and valgrind"
bash tests/c/run.sh

step "Rust unit and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
