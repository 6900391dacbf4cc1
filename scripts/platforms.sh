# The platforms AzBatch ships for and how this machine builds and runs each.
# Sourced by scripts/build-module.sh and tests/c/run-cross.sh:
#   platform_triple RID        the Rust target of linux-x64, linux-arm64, win-x64
#   platform_library RID       the native library's file name on that platform
#   platform_tools RID...      installs what building (and running) them needs
#                              that this machine lacks, saying what it installs
#   platform_build RID ARGS... cargo build --profile ship for that platform
# Linux x64 is the host; linux-arm64 is cross-built with Debian's
# gcc-aarch64-linux-gnu and run under qemu-user, win-x64 is built with mingw-w64
# (x86_64-pc-windows-gnu) and run under Wine. The -msvc build for Windows is the
# GitHub workflow's (.github/workflows/module.yml).

PLATFORMS=(linux-x64 linux-arm64 win-x64)

platform_triple() {
  case "$1" in
    linux-x64) echo x86_64-unknown-linux-gnu ;;
    linux-arm64) echo aarch64-unknown-linux-gnu ;;
    win-x64) echo x86_64-pc-windows-gnu ;;
    *) echo "unknown platform $1 (one of ${PLATFORMS[*]})" >&2; return 2 ;;
  esac
}

platform_library() {
  case "$1" in
    win-*) echo azbatch.dll ;;
    *) echo libazbatch.so ;;
  esac
}

# Linkers and C compilers (aws-lc-sys compiles C) for the cross targets.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER:-x86_64-w64-mingw32-gcc}
export CC_x86_64_pc_windows_gnu=${CC_x86_64_pc_windows_gnu:-x86_64-w64-mingw32-gcc}
export AR_x86_64_pc_windows_gnu=${AR_x86_64_pc_windows_gnu:-x86_64-w64-mingw32-ar}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
export AR_aarch64_unknown_linux_gnu=${AR_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-ar}

# Wine's launcher is not on PATH in Debian's wine64 package.
WINE=${WINE:-$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)}

platform_tools() {
  local apt=() targets=() rid
  for rid in "$@"; do
    case "$rid" in
      linux-x64) ;;
      linux-arm64)
        command -v aarch64-linux-gnu-gcc >/dev/null || apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
        command -v qemu-aarch64 >/dev/null || apt+=(qemu-user)
        ;;
      win-x64)
        command -v x86_64-w64-mingw32-gcc >/dev/null || apt+=(gcc-mingw-w64-x86-64)
        [ -x "$WINE" ] || apt+=(wine64)
        ;;
      *) platform_triple "$rid" >/dev/null || return 2 ;;
    esac
    if [ "$rid" != linux-x64 ]; then
      local t
      t=$(platform_triple "$rid")
      grep -qx "$t" <<<"$(rustup target list --installed)" || targets+=("$t")
    fi
  done
  if [ ${#apt[@]} -gt 0 ]; then
    echo "installing ${apt[*]} (apt) to build and run ${*}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}" >/dev/null
  fi
  if [ ${#targets[@]} -gt 0 ]; then
    echo "installing the Rust targets ${targets[*]} (rustup)" >&2
    rustup target add "${targets[@]}" >&2
  fi
  WINE=${WINE_OVERRIDE:-$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)}
}

# The folder cargo leaves a platform's ship build in.
platform_dir() {
  local rid=$1
  if [ "$rid" = linux-x64 ]; then echo target/ship; else echo "target/$(platform_triple "$rid")/ship"; fi
}

platform_build() {
  local rid=$1; shift
  if [ "$rid" = linux-x64 ]; then
    cargo build --quiet --profile ship "$@"
  else
    cargo build --quiet --profile ship --target "$(platform_triple "$rid")" "$@"
  fi
}
