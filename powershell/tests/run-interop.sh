#!/usr/bin/env bash
# The module's interop (powershell/src/Native.cs), outside PowerShell: compiled
# as C# 5 with InteropDriver.cs and run on .NET (the runtime PowerShell 7 runs
# on) against the real library, found the way the module finds it
# (runtimes/<os>-<arch>/native/ under a module folder, through its resolver),
# and the emulator. (scripts/build-module.sh compiles all of AzBatch.dll as
# C# 5 against netstandard2.0 and PowerShellStandard with warnings as errors.)
# The C# compiler and the .NET runtime come from ../shared/tools (or the
# machine's own dotnet SDK's csc and dotnet, where AZBATCH_CSC/AZBATCH_DOTNET say).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools="$root/../shared/tools/bin"
csc=${AZBATCH_CSC:-$tools/csc}
dotnet=${AZBATCH_DOTNET:-$tools/dotnet}
[ -x "$csc" ] && [ -x "$dotnet" ] || { echo "no C# compiler or .NET runtime: expected $tools (or set AZBATCH_CSC and AZBATCH_DOTNET)" >&2; exit 1; }
refs=$("$tools/dotnet-tools-root")/ref
cargo build --quiet -p azbatch -p azbatch-emulator
work=$(mktemp -d)
emu_out="$work/emulator.out"
target/debug/azbatch-emulator --subscriptions 20 --latency-ms 20 --token interop-token >"$emu_out" &
emu=$!
trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$emu_out" ] && break; sleep 0.1; done
endpoint=$(head -n1 "$emu_out")

# The module folder exactly as scripts/build-module.sh makes it.
module=$(bash scripts/build-module.sh --debug --out "$work" | tail -n1)

echo "== the interop driven on .NET against the library and the emulator"
"$csc" -nologo -noconfig -nostdlib -langversion:5 -warnaserror -target:exe -out:"$work/driver.dll" \
  $(printf -- '-r:%s ' "$refs"/net10.0/*.dll) powershell/src/Native.cs powershell/tests/InteropDriver.cs
cat >"$work/driver.runtimeconfig.json" <<'JSON'
{"runtimeOptions":{"tfm":"net10.0","framework":{"name":"Microsoft.NETCore.App","version":"10.0.0"},"rollForward":"LatestMajor"}}
JSON
version=$(grep -m1 '^version = ' Cargo.toml | sed 's/^version = "\(.*\)"/\1/')
"$dotnet" "$work/driver.dll" "$endpoint" interop-token "$module" "$version"
