#!/usr/bin/env bash
# Builds a ready-to-import PowerShell module folder: the manifest and format
# file of powershell/AzBatch, AzBatch.dll (the cmdlet and the interop, compiled
# from powershell/src as C# 5 for netstandard2.0, so Windows PowerShell 5.1 and
# PowerShell 7 load the same file and nothing is compiled at import), its help
# (en-US/AzBatch.dll-Help.xml, from powershell/help), LICENSE, and the native
# library (stripped) under runtimes/<os>-<arch>/native/.
#
# usage: scripts/build-module.sh [--debug] [--target TRIPLE] [--out DIR]
#                                [--runtimes DIR]... [--platforms LIST] [--package]
#   --debug     the debug library (tests), not the stripped "ship" profile
#   --target    a Rust target triple, to build for another platform (its
#               toolchain must be installed: rustup target add TRIPLE)
#   --out       where the module folder goes (default target/module)
#   --runtimes  a folder holding runtimes/<rid>/ (e.g. another platform's
#               module folder or build artifact) to add to this one; repeatable
#   --platforms also build the library for these platforms (comma-separated:
#               linux-x64, linux-arm64, win-x64, or "all") on this machine,
#               installing the cross toolchains it lacks (scripts/platforms.sh)
#   --package   also write DIR/AzBatch.<version>.nupkg, the package
#               Publish-PSResource makes for the PowerShell Gallery; it holds
#               every platform's library (--platforms all unless given)
#
# The manifest's FileList always names every file of the folder.
#
# The C# compiler is AZBATCH_CSC, else ../shared/tools/bin/csc, else csc on
# PATH, with reference assemblies (netstandard2.0, PowerShellStandard 5.1.1)
# from AZBATCH_REFS, else ../shared/tools; where none of these exists but a .NET
# SDK does, powershell/src/AzBatch.csproj is built with `dotnet build`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=ship
target=""
out="$root/target/module"
package=0
platforms=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --target) target=$2; shift ;;
    --out) out=$2; shift ;;
    --runtimes) extra+=("$2"); shift ;;
    --platforms) platforms=$2; shift ;;
    --package) package=1 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

source scripts/platforms.sh
[ "$package" = 1 ] && [ -z "$platforms" ] && platforms=all
[ "$platforms" = all ] && platforms=$(IFS=,; echo "${PLATFORMS[*]}")
IFS=, read -r -a cross <<<"$platforms"

args=(build --quiet -p azbatch)
[ "$profile" = ship ] && args+=(--profile ship)
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
mkdir -p "$module/runtimes/$os-$arch/native" "$module/en-US"

tools="$root/../shared/tools/bin"
csc=${AZBATCH_CSC:-}
if [ -z "$csc" ] && [ -x "$tools/csc" ]; then csc="$tools/csc"; fi
if [ -z "$csc" ]; then csc=$(command -v csc || true); fi
if [ -n "$csc" ]; then
  refs=${AZBATCH_REFS:-}
  [ -n "$refs" ] || refs="$("$tools/dotnet-tools-root")/ref"
  sma="$refs/PowerShellStandard-5.1.1/netstandard2.0/System.Management.Automation.dll"
  [ -f "$sma" ] || { echo "no PowerShellStandard reference at $sma (set AZBATCH_REFS)" >&2; exit 1; }
  "$csc" -nologo -noconfig -nostdlib -langversion:5 -warnaserror -optimize+ -deterministic -target:library \
    -out:"$module/AzBatch.dll" $(printf -- '-r:%s ' "$refs"/netstandard2.0/*.dll) -r:"$sma" powershell/src/*.cs
elif command -v dotnet >/dev/null && [ -n "$(dotnet --list-sdks 2>/dev/null)" ]; then
  dotnet build powershell/src/AzBatch.csproj -c Release -o "$out/AzBatch.dll.build" --nologo -v quiet
  cp "$out/AzBatch.dll.build/AzBatch.dll" "$module/"
  rm -rf "$out/AzBatch.dll.build"
else
  echo "no C# compiler: set AZBATCH_CSC, install the .NET SDK, or put ../shared/tools beside the repository" >&2
  exit 1
fi
python3 powershell/help/make-maml.py powershell/help/Invoke-AzBatchRequest.json \
  powershell/src/InvokeAzBatchRequest.cs "$module/en-US/AzBatch.dll-Help.xml"
cp powershell/AzBatch/AzBatch.psd1 powershell/AzBatch/AzBatch.Format.ps1xml LICENSE "$module/"
cp "$built" "$module/runtimes/$os-$arch/native/"
if [ ${#cross[@]} -gt 0 ]; then
  platform_tools "${cross[@]}"
  for rid in "${cross[@]}"; do
    [ -f "$module/runtimes/$rid/native/$(platform_library "$rid")" ] && continue
    platform_build "$rid" -p azbatch
    mkdir -p "$module/runtimes/$rid/native"
    cp "$(platform_dir "$rid")/$(platform_library "$rid")" "$module/runtimes/$rid/native/"
  done
fi
for dir in "${extra[@]+"${extra[@]}"}"; do
  src="$dir"
  [ -d "$src/runtimes" ] && src="$src/runtimes"
  [ -d "$src" ] || { echo "--runtimes $dir: no such folder" >&2; exit 2; }
  cp -R "$src"/. "$module/runtimes/"
done

# The manifest names every file the folder holds (the Gallery, Test-ModuleManifest
# and a reader of the installed module read it).
files=$(cd "$module" && find . -type f ! -name AzBatch.psd1 | sed 's|^\./||' | sort)
python3 - "$module/AzBatch.psd1" $files <<'PY'
import re, sys
path, files = sys.argv[1], ["AzBatch.psd1"] + sys.argv[2:]
text = open(path, encoding="utf-8").read()
listed = ", ".join("'" + f + "'" for f in files)
text, n = re.subn(r"FileList\s*=\s*@\([^)]*\)", lambda _: "FileList             = @(" + listed + ")", text)
assert n == 1, "no FileList in the manifest"
open(path, "w", encoding="utf-8").write(text)
PY

if [ "$package" = 1 ]; then
  version=$(sed -n "s/^ *ModuleVersion *= *'\(.*\)'/\1/p" "$module/AzBatch.psd1")
  repo="$out/.local-repository"
  rm -rf "$repo" && mkdir -p "$repo"
  scripts/pwsh -NoProfile -NonInteractive -Command "
    \$ErrorActionPreference = 'Stop'
    Register-PSResourceRepository -Name azbatch-build -Uri '$repo' -Trusted -Force
    try { Publish-PSResource -Path '$module' -Repository azbatch-build }
    finally { Unregister-PSResourceRepository -Name azbatch-build }" >&2
  mv "$repo/AzBatch.$version.nupkg" "$out/AzBatch.$version.nupkg"
  rm -rf "$repo"
  echo "$out/AzBatch.$version.nupkg" >&2
fi
echo "$module"
