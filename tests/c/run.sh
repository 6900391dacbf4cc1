#!/usr/bin/env bash
# Builds tests/c/abi_test.c against the real library and runs it against the
# emulator twice: under AddressSanitizer (+UBSan, leak checking on) and under
# valgrind (no errors, no definite or indirect leaks).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=tests/c/build
mkdir -p "$out"
cargo build --quiet -p azbatch -p azbatch-emulator
lib=target/debug

emu_out=$(mktemp)
"$lib/azbatch-emulator" --subscriptions 50 --latency-ms 20 --token c-abi-token >"$emu_out" &
emu=$!
trap 'kill $emu 2>/dev/null || true; rm -f "$emu_out"' EXIT
for _ in $(seq 100); do [ -s "$emu_out" ] && break; sleep 0.1; done
endpoint=$(head -n1 "$emu_out")
[ -n "$endpoint" ] || { echo "emulator did not start" >&2; exit 1; }

cflags=(-std=c99 -D_POSIX_C_SOURCE=199309L -pthread -Wall -Wextra -Werror -g -Iinclude tests/c/abi_test.c -L"$lib" -lazbatch -Wl,-rpath,"$root/$lib")

echo "== C ABI under AddressSanitizer + UBSan"
gcc -fsanitize=address,undefined -fno-omit-frame-pointer "${cflags[@]}" -o "$out/abi_asan"
grep -q libasan <<<"$(ldd "$out/abi_asan")" || { echo "AddressSanitizer is not linked" >&2; exit 1; }
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 "$out/abi_asan" "$endpoint" c-abi-token asan

echo "== C ABI under valgrind"
gcc "${cflags[@]}" -o "$out/abi_plain"
valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect "$out/abi_plain" "$endpoint" c-abi-token valgrind

echo "== C ABI logs with AZBATCH_LOG (and never the token)"
log=$(mktemp)
AZBATCH_LOG=info "$out/abi_plain" "$endpoint" c-abi-token logs >/dev/null 2>"$log"
grep -q "token fetched" "$log" || { echo "AZBATCH_LOG=info logged nothing" >&2; exit 1; }
if grep -q "c-abi-token" "$log"; then echo "a log line holds the token" >&2; exit 1; fi
echo "$(wc -l <"$log") log lines, no token"
rm -f "$log"
