#!/usr/bin/env bash
# Compiles the module's interop class as C# 5 with Mono's mcs, together with
# InteropDriver.cs, and runs it under Mono against the real library (found the
# way the module finds it: runtimes/<os>-<arch>/native/ under a module folder)
# and the emulator.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v mcs >/dev/null && command -v mono >/dev/null || { echo "mono (mcs, mono) is not installed" >&2; exit 1; }
cargo build --quiet -p azbatch -p azbatch-emulator
work=$(mktemp -d)
emu_out="$work/emulator.out"
target/debug/azbatch-emulator --subscriptions 20 --latency-ms 20 --token mono-token >"$emu_out" &
emu=$!
trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$emu_out" ] && break; sleep 0.1; done
endpoint=$(head -n1 "$emu_out")

# The module folder exactly as scripts/build-module.sh makes it.
module=$(bash scripts/build-module.sh --debug --out "$work" | tail -n1)
native=$(dirname "$(ls "$module"/runtimes/*/native/libazbatch.so)")

mcs -langversion:5 -warnaserror -out:"$work/driver.exe" "$module/AzBatchNative.cs" powershell/tests/InteropDriver.cs
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Mono's own DllImport probing ignores libraries already loaded by absolute
# path (glibc and .NET bind "libazbatch.so" to the preloaded copy through its
# soname), so Mono is also told the module's native folder.
LD_LIBRARY_PATH="$native${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  mono "$work/driver.exe" "$endpoint" mono-token "$module" "$version"
