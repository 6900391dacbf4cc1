/* Test scaffolding for Wine only: holds a file open as another Windows
 * process would (an editor, a backup agent, a second reader), so the test can
 * check that azbatch.exe writes its journal while the file is held. It holds
 * it until the file RELEASE exists (at most a minute).
 * usage: hold.exe PATH RELEASE */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hold.exe PATH RELEASE\n");
        return 2;
    }
    HANDLE h = CreateFileW(argv[1], GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "hold.exe: cannot open the file (error %lu)\n", GetLastError());
        return 1;
    }
    printf("holding\n");
    fflush(stdout);
    for (int i = 0; i < 600 && GetFileAttributesW(argv[2]) == INVALID_FILE_ATTRIBUTES; i++) Sleep(100);
    CloseHandle(h);
    return 0;
}
