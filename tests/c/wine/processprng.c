/* Test scaffolding for Wine only; never shipped. Rust's standard library on
 * Windows takes its randomness from ProcessPrng in bcryptprimitives.dll
 * (Windows 10 and later have it); Wine 8 lacks that export. This DLL,
 * placed beside the test programs, gives it over RtlGenRandom (advapi32's
 * SystemFunction036), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
