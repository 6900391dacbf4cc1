#!/usr/bin/env bash
# Builds a ready-to-import PowerShell module folder: the manifest and format
# file of powershell/AzBatch, AzBatch.dll (the cmdlet and the interop, compiled
# from powershell/src as C# 5 for netstandard2.0, so Windows PowerShell 5.1 and
# PowerShell 7 load the same file and nothing is compiled at import), its help
# (en-US/AzBatch.dll-Help.xml, from powershell/help), and the native library
# for this platform under runtimes/<os>-<arch>/native/.
#
# The C# compiler is AZBATCH_CSC, else ../shared/tools/bin/csc, else csc on
# PATH; the reference assemblies (netstandard2.0 and PowerShellStandard 5.1.1's
# System.Management.Automation.dll) come from AZBATCH_REFS, else ../shared/tools.
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

tools="$root/../shared/tools/bin"
csc=${AZBATCH_CSC:-}
[ -n "$csc" ] || { [ -x "$tools/csc" ] && csc="$tools/csc"; } || true
[ -n "$csc" ] || csc=$(command -v csc || true)
[ -n "$csc" ] || { echo "no C# compiler: set AZBATCH_CSC, or put ../shared/tools beside the repository" >&2; exit 1; }
refs=${AZBATCH_REFS:-}
[ -n "$refs" ] || refs="$("$tools/dotnet-tools-root")/ref"
sma="$refs/PowerShellStandard-5.1.1/netstandard2.0/System.Management.Automation.dll"
[ -f "$sma" ] || { echo "no PowerShellStandard reference at $sma (set AZBATCH_REFS)" >&2; exit 1; }

module="$out/AzBatch"
rm -rf "$module"
mkdir -p "$module/runtimes/$os-$arch/native" "$module/en-US"
"$csc" -nologo -noconfig -nostdlib -langversion:5 -warnaserror -optimize+ -deterministic -target:library \
  -out:"$module/AzBatch.dll" $(printf -- '-r:%s ' "$refs"/netstandard2.0/*.dll) -r:"$sma" powershell/src/*.cs
python3 powershell/help/make-maml.py powershell/help/Invoke-AzBatchRequest.json \
  powershell/src/InvokeAzBatchRequest.cs "$module/en-US/AzBatch.dll-Help.xml"
cp powershell/AzBatch/AzBatch.psd1 powershell/AzBatch/AzBatch.Format.ps1xml "$module/"
cp "$built" "$module/runtimes/$os-$arch/native/"
echo "$module"
