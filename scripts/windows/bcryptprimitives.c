/*
 * A stand-in for Windows' bcryptprimitives.dll, for Wine releases that lack it (Wine 8).
 *
 * The Rust standard library imports ProcessPrng from bcryptprimitives.dll for its random numbers
 * (the seeds of HashMap); without the DLL no Rust program starts. This one exports ProcessPrng
 * and answers it with RtlGenRandom (SystemFunction036 of advapi32), which Wine has. It is only
 * for running the tests under Wine: real Windows has the DLL.
 *
 * Built by scripts/windows-tests:
 *   x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
