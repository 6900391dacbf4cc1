#!/usr/bin/env bash
# Builds a ready-to-import PowerShell module folder: powershell/AzBatch plus the
# native library for this platform under runtimes/<os>-<arch>/native/.
#
# usage: scripts/build-module.sh [--debug] [--target TRIPLE] [--out DIR]
#   --target  a Rust target triple, to build for another platform (the
#             toolchain for it must be installed: rustup target add TRIPLE)
#   --out     where the module folder goes (default target/module)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=release
target=""
out="$root/target/module"
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --target) target=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

args=(build --quiet -p azbatch)
[ "$profile" = release ] && args+=(--release)
[ -n "$target" ] && args+=(--target "$target")
cargo "${args[@]}"

triple=${target:-$(rustc -vV | sed -n 's/^host: //p')}
case "$triple" in
  x86_64-*) arch=x64 ;;
  i686-*|i586-*) arch=x86 ;;
  aarch64-*) arch=arm64 ;;
  armv7*|arm-*) arch=arm ;;
  *) echo "unsupported target $triple" >&2; exit 2 ;;
esac
case "$triple" in
  *-windows-*) os=win; lib=azbatch.dll ;;
  *-apple-*) os=osx; lib=libazbatch.dylib ;;
  *-linux-*) os=linux; lib=libazbatch.so ;;
  *) echo "unsupported target $triple" >&2; exit 2 ;;
esac
built="target/${target:+$target/}$profile/$lib"

module="$out/AzBatch"
rm -rf "$module"
mkdir -p "$module/runtimes/$os-$arch/native"
cp powershell/AzBatch/AzBatch.psd1 powershell/AzBatch/AzBatch.psm1 powershell/AzBatch/AzBatchNative.cs \
   powershell/AzBatch/AzBatch.Format.ps1xml "$module/"
cp "$built" "$module/runtimes/$os-$arch/native/"
echo "$module"
