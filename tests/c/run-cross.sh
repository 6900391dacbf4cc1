#!/usr/bin/env bash
# The shipped libraries of the other platforms, tested on this machine against
# the native emulator on loopback:
#   win-x64      azbatch.dll (mingw-w64) and azbatch.exe under Wine: the C ABI
#                suite (tests/c/abi_test.c built with mingw), the DLL's imports
#                (system DLLs only, no mingw runtime), and the command line
#                (run, --dry-run, exit codes, a CRLF + BOM file, Windows paths,
#                the journal, also while another process holds it open,
#                Ctrl+C, TLS refused for an unknown authority)
#   linux-arm64  libazbatch.so under qemu-user: the C ABI suite
# usage: tests/c/run-cross.sh [win-x64] [linux-arm64]   (default: both)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source scripts/platforms.sh
legs=("$@")
[ ${#legs[@]} -gt 0 ] || legs=(win-x64 linux-arm64)
platform_tools "${legs[@]}"

cargo build --quiet -p azbatch-emulator
work="$root/target/cross-test"
mkdir -p "$work"
emu_out=$(mktemp)
target/debug/azbatch-emulator --subscriptions 50 --latency-ms 20 --token cross-token >"$emu_out" &
emu=$!
trap 'kill $emu 2>/dev/null || true; rm -f "$emu_out"' EXIT
for _ in $(seq 100); do [ -s "$emu_out" ] && break; sleep 0.1; done
endpoint=$(head -n1 "$emu_out")
[ -n "$endpoint" ] || { echo "emulator did not start" >&2; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# A Windows DLL may import only what every Windows machine has.
check_imports() {
  local dll=$1 imports bad
  imports=$(x86_64-w64-mingw32-objdump -p "$dll" | sed -n 's/^\s*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
  echo "imports of $(basename "$dll"): $(echo $imports)"
  bad=$(echo "$imports" | grep -Ev '^(kernel32|ntdll|ws2_32|crypt32|msvcrt|userenv|advapi32|bcrypt|bcryptprimitives|ncrypt|secur32|ole32|oleaut32|shell32|user32|api-ms-win-[a-z0-9-]+)\.dll$' || true)
  [ -z "$bad" ] || fail "$(basename "$dll") imports DLLs a Windows machine may lack (a mingw runtime?): $bad"
}

win_leg() {
  local dir="$work/win-x64" out code
  platform_build win-x64 -p azbatch -p azbatch-cli
  mkdir -p "$dir"
  cp "$(platform_dir win-x64)/azbatch.dll" "$(platform_dir win-x64)/azbatch.exe" "$dir/"
  echo "== win-x64: imports"
  check_imports "$dir/azbatch.dll"
  check_imports "$dir/azbatch.exe"
  # The check itself must catch a mingw runtime import.
  printf '#include <pthread.h>\nint f(void){pthread_mutex_t m; return pthread_mutex_init(&m, 0);}\n' >"$dir/probe.c"
  x86_64-w64-mingw32-gcc -shared -o "$dir/probe.dll" "$dir/probe.c" -pthread
  if (check_imports "$dir/probe.dll") >/dev/null 2>&1; then fail "the import check passed a DLL importing libwinpthread"; fi
  rm -f "$dir/probe.c" "$dir/probe.dll"

  x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" tests/c/wine/processprng.c -ladvapi32
  x86_64-w64-mingw32-gcc -std=c99 -D_POSIX_C_SOURCE=199309L -Wall -Wextra -Werror -O1 -Iinclude \
    tests/c/abi_test.c "$dir/azbatch.dll" -static -pthread -o "$dir/abi_test.exe"
  export WINEPREFIX="$work/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
  if [ ! -d "$WINEPREFIX" ]; then
    echo "== win-x64: Wine's first start (once, into $WINEPREFIX)"
    "$WINE" wineboot -i >/dev/null 2>&1
  fi
  echo "== win-x64: the C ABI under Wine"
  (cd "$dir" && "$WINE" ./abi_test.exe "$endpoint" cross-token wine)

  echo "== win-x64: azbatch.exe under Wine"
  local exe="$dir/azbatch.exe" winpath
  winpath() { echo "Z:$(echo "$1" | tr / '\\')"; }
  # A JSON-lines file as Windows editors and Out-File write it: UTF-8 BOM, CRLF.
  printf '\xef\xbb\xbf' >"$dir/requests.jsonl"
  for i in 1 2 3; do
    printf '{"id":"s%s","url":"/subscriptions/00000000-0000-4000-8000-00000000000%s?api-version=2022-12-01"}\r\n' "$i" "$i" >>"$dir/requests.jsonl"
  done
  rm -f "$dir/journal.jsonl"
  out=$(cd "$dir" && "$WINE" "$exe" run --endpoint "$endpoint" --token cross-token \
    --journal "$(winpath "$dir/journal.jsonl")" "$(winpath "$dir/requests.jsonl")" 2>"$dir/stderr.txt") || fail "run: exit $? $(cat "$dir/stderr.txt")"
  [ "$(echo "$out" | grep -c '"status":200')" = 3 ] || fail "run: three 200s expected: $out"
  [ -s "$dir/journal.jsonl" ] || fail "the journal at a Z:\\ path was not written"
  echo "run: 3 results from a BOM + CRLF file given as $(winpath "$dir/requests.jsonl"), journal written"
  out=$(cd "$dir" && "$WINE" "$exe" run --endpoint "$endpoint" --token cross-token \
    --journal "$(winpath "$dir/journal.jsonl")" "$(winpath "$dir/requests.jsonl")" 2>"$dir/stderr.txt") || fail "rerun: exit $?"
  grep -qi "replayed" "$dir/stderr.txt" || fail "the rerun did not replay from the journal: $(cat "$dir/stderr.txt")"
  echo "rerun: replayed from the journal"
  out=$(cd "$dir" && "$WINE" "$exe" run --dry-run --api arm "$(winpath "$dir/requests.jsonl")" 2>&1) || fail "--dry-run: exit $?"
  grep -q "subscription-reads" <<<"$out" || fail "--dry-run printed no plan: $out"
  echo "--dry-run: the plan, nothing sent"
  code=0
  printf '{"url":5}\r\n' | (cd "$dir" && "$WINE" "$exe" run --endpoint "$endpoint" --token cross-token >/dev/null 2>&1) || code=$?
  [ "$code" = 2 ] || fail "bad input: exit 2 expected, got $code"
  code=0
  printf '"/subscriptions/00000000-0000-4000-8000-999999999999?api-version=2022-12-01"\r\n' |
    (cd "$dir" && "$WINE" "$exe" run --endpoint "$endpoint" --token cross-token >/dev/null 2>&1) || code=$?
  [ "$code" = 1 ] || fail "a failed request: exit 1 expected, got $code"
  echo "exit codes: 2 for bad input, 1 for a failed request"

  # The journal, held open by another Windows process, is still written:
  # AzBatch appends to it and never renames or deletes it.
  x86_64-w64-mingw32-gcc -municode -O1 -o "$dir/hold.exe" tests/c/wine/hold.c
  local before after holder
  before=$(wc -c <"$dir/journal.jsonl")
  rm -f "$dir/release"
  (cd "$dir" && "$WINE" ./hold.exe "$(winpath "$dir/journal.jsonl")" "$(winpath "$dir/release")" >"$dir/hold.txt" 2>&1) &
  holder=$!
  for _ in $(seq 300); do grep -q holding "$dir/hold.txt" 2>/dev/null && break; sleep 0.1; done
  grep -q holding "$dir/hold.txt" || fail "hold.exe did not open the journal: $(cat "$dir/hold.txt")"
  printf '"/subscriptions/00000000-0000-4000-8000-000000000004?api-version=2022-12-01"\r\n' >>"$dir/requests.jsonl"
  out=$(cd "$dir" && "$WINE" "$exe" run --endpoint "$endpoint" --token cross-token \
    --journal "$(winpath "$dir/journal.jsonl")" "$(winpath "$dir/requests.jsonl")" 2>"$dir/stderr.txt") || fail "run with the journal held: exit $? $(cat "$dir/stderr.txt")"
  touch "$dir/release"
  wait $holder || fail "hold.exe failed: $(cat "$dir/hold.txt")"
  after=$(wc -c <"$dir/journal.jsonl")
  [ "$after" -gt "$before" ] || fail "the journal held by another process was not written ($before -> $after bytes)"
  echo "journal: written while another process held it open ($before -> $after bytes)"

  # Ctrl+C: Wine turns SIGINT into the console's CTRL_C_EVENT; every request
  # still gets a result.
  local slow_out slow_emu slow
  slow_out=$(mktemp)
  target_emu=$root/target/debug/azbatch-emulator
  "$target_emu" --subscriptions 50 --latency-ms 5000 >"$slow_out" &
  slow_emu=$!
  for _ in $(seq 100); do [ -s "$slow_out" ] && break; sleep 0.1; done
  for i in $(seq 10 39); do
    printf '"/subscriptions/00000000-0000-4000-8000-0000000000%s?api-version=2022-12-01"\n' "$i"
  done >"$dir/slow.jsonl"
  code=0
  (cd "$dir" && exec "$WINE" ./azbatch.exe run -vv --endpoint "$(head -n1 "$slow_out")" --token t slow.jsonl >"$dir/ctrlc.out" 2>"$dir/ctrlc.err") &
  slow=$!
  # Interrupted once its batches are on the wire (-vv logs each one sent).
  for _ in $(seq 300); do grep -q "batch sent" "$dir/ctrlc.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "batch sent" "$dir/ctrlc.err" || fail "Ctrl+C: the run sent no batch: $(cat "$dir/ctrlc.err")"
  pkill -INT -f "azbatch.exe run -vv --endpoint $(head -n1 "$slow_out")" || fail "Ctrl+C: no azbatch.exe to interrupt"
  wait $slow || code=$?
  kill $slow_emu 2>/dev/null || true
  rm -f "$slow_out"
  [ "$code" = 1 ] || fail "Ctrl+C: exit 1 expected, got $code: $(tail -n 5 "$dir/ctrlc.err")"
  [ "$(grep -c '"code":"Cancelled"' "$dir/ctrlc.out")" = 30 ] || fail "Ctrl+C: 30 Cancelled results expected: $(cat "$dir/ctrlc.out")"
  echo "Ctrl+C: the run ended with a Cancelled result for each of its 30 requests"

  echo "== win-x64: TLS under Wine"
  # An authority of the test's own and a certificate it signed for localhost.
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=azbatch-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/leaf.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$dir/leaf.ext"
  openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 1 \
    -extfile "$dir/leaf.ext" -out "$dir/cert.pem" >/dev/null 2>&1
  local port=$((20000 + RANDOM % 20000))
  openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$dir/cert.pem" -key "$dir/key.pem" -www >/dev/null 2>&1 &
  local tls=$!
  sleep 0.5
  local one='"/subscriptions/00000000-0000-4000-8000-000000000001?api-version=2022-12-01"'
  code=0
  out=$(cd "$dir" && "$WINE" "$exe" run --endpoint "https://localhost:$port" --token cross-token <<<"$one" 2>&1) || code=$?
  [ "$code" = 1 ] || fail "TLS to an untrusted server: exit 1 expected, got $code: $out"
  grep -q '"code":"TlsFailed"' <<<"$out" || fail "TLS refusal is not TlsFailed: $out"
  grep -q '"attempts":1' <<<"$out" || fail "a TLS refusal was sent again: $out"
  grep -q "SSL_CERT_FILE" <<<"$out" || fail "TLS refusal does not say what to do: $out"
  grep -q cross-token <<<"$out" && fail "the token appears in the output"
  echo "untrusted: TlsFailed at once, with advice ($(echo "$out" | grep -o '(unexpected[^)]*)\|(invalid peer[^)]*)' | head -n1))"
  # SSL_CERT_FILE by a Windows path: read (the run gets past it to TLS), or
  # refused with its name when missing.
  code=0
  out=$(cd "$dir" && SSL_CERT_FILE="$(winpath "$dir/missing.pem")" "$WINE" "$exe" run --endpoint "https://localhost:$port" \
    --token cross-token <<<"$one" 2>&1) || code=$?
  [ "$code" = 2 ] || [ "$code" = 1 ] || fail "SSL_CERT_FILE missing: exit 1 or 2 expected, got $code: $out"
  echo "$out" | grep -Fq 'missing.pem, which cannot be read' || fail "a missing SSL_CERT_FILE is not named: $out"
  code=0
  out=$(cd "$dir" && SSL_CERT_FILE="$(winpath "$dir/ca.pem")" "$WINE" "$exe" run --endpoint "https://localhost:$port" \
    --token cross-token <<<"$one" 2>&1) || code=$?
  kill $tls 2>/dev/null || true
  if grep -q '"code":"TlsFailed"' <<<"$out"; then
    # Wine's crypt32 cannot build the chain the platform verifier asks for
    # (ERROR_INVALID_PARAMETER); real Windows trusts the file's authority.
    grep -q "Invalid parameter" <<<"$out" || fail "SSL_CERT_FILE's authority was refused for another reason than Wine's: $out"
    echo "SSL_CERT_FILE at $(winpath "$dir/ca.pem"): read; Wine's crypt32 cannot verify a chain (Invalid parameter), so trust itself is the workflow's to prove"
  else
    echo "SSL_CERT_FILE at $(winpath "$dir/ca.pem"): trusted, the handshake passed (the server is no batch endpoint: $(echo "$out" | grep -o '"code":"[A-Za-z]*"' | head -n1))"
  fi
}

arm64_leg() {
  local dir="$work/linux-arm64"
  platform_build linux-arm64 -p azbatch
  mkdir -p "$dir"
  cp "$(platform_dir linux-arm64)/libazbatch.so" "$dir/"
  aarch64-linux-gnu-gcc -std=c99 -D_POSIX_C_SOURCE=199309L -pthread -Wall -Wextra -Werror -O1 -Iinclude \
    tests/c/abi_test.c -L"$dir" -lazbatch -Wl,-rpath,"$dir" -o "$dir/abi_test"
  echo "== linux-arm64: the C ABI under qemu-user"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$dir/abi_test" "$endpoint" cross-token arm64
}

for leg in "${legs[@]}"; do
  case "$leg" in
    win-x64) win_leg ;;
    linux-arm64) arm64_leg ;;
    *) fail "unknown leg $leg" ;;
  esac
done
