/* bcryptprimitives.dll for wine versions without one (Debian 12's wine 8.0).
 *
 * Windows 10 and later ship bcryptprimitives.dll; Rust's std (1.78 and
 * later) imports its ProcessPrng for random numbers (HashMap seeds), so a
 * Rust program for x86_64-pc-windows-gnu does not start on a wine that lacks
 * the DLL. scripts/test-windows.sh builds this file with mingw-w64 into the
 * test's own wine prefix (target/wine/prefix) when wine has no
 * bcryptprimitives.dll; it is never shipped: on Windows the system's DLL is
 * used. ProcessPrng here is the system RNG through bcrypt.dll's
 * BCryptGenRandom (which wine 8 has), and fails when that fails. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG))) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
