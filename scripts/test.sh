#!/usr/bin/env bash
# Every check, as CI runs it: formatting, lints, Rust unit and integration
# tests, the dependency rule for the library, the C ABI under AddressSanitizer
# and valgrind, and the PowerShell module (syntax, consistency, the interop
# class under Mono, Pester where pwsh exists). Installs what a fresh machine
# lacks: apt packages, and Python packages into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v mcs >/dev/null || need_apt+=(mono-mcs)
command -v mono >/dev/null || need_apt+=(mono-runtime)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! .venv/bin/python -c 'import tree_sitter, tree_sitter_powershell' 2>/dev/null; then
  step "installing Python packages into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r powershell/tests/requirements.txt
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

step "PowerShell: syntax of every .ps1/.psm1/.psd1 (tree-sitter-powershell)"
.venv/bin/python powershell/tests/syntax_check.py

step "PowerShell: interop class vs azbatch.h, manifest, help"
.venv/bin/python powershell/tests/module_check.py

step "PowerShell: interop class compiled as C# 5 and run under Mono"
bash powershell/tests/run-interop.sh

step "PowerShell: Pester tests"
if command -v pwsh >/dev/null; then
  module=$(bash scripts/build-module.sh --debug --out target/pester | tail -n1)
  cargo build --quiet -p azbatch-emulator
  AZBATCH_MODULE="$module" AZBATCH_EMULATOR="$PWD/target/debug/azbatch-emulator" \
    pwsh -NoProfile -Command 'Invoke-Pester -Path powershell/tests -Output Detailed -CI'
else
  echo "SKIPPED: pwsh is not installed on this machine, so the Pester tests (powershell/tests/*.Tests.ps1) did not run; they were only syntax-checked above."
fi

step "Rust unit and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
