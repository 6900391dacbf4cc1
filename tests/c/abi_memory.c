/* The C ABI's memory, for BENCHMARKS.md (not a test): N requests through
   batch_open + batch_add + batch_next ("stream"), or batch_add + batch_execute
   ("execute"), against an emulator at zero latency; prints the process's peak
   resident memory (VmHWM) before and after the run.

   usage: abi_memory ENDPOINT TOKEN N stream|execute */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "azbatch.h"

static long hwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    }
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: abi_memory ENDPOINT TOKEN N stream|execute\n"); return 2; }
    long n = atol(argv[3]);
    int stream = strcmp(argv[4], "stream") == 0;
    char opts[512];
    snprintf(opts, sizeof opts, "{\"api\":\"arm\",\"endpoint\":\"%s\",\"token\":\"%s\",\"concurrency\":16}", argv[1], argv[2]);
    AzBatch *b = NULL;
    char *err = NULL;
    if (batch_new(opts, &b, &err) != AZBATCH_OK) { fprintf(stderr, "batch_new: %s\n", err); return 1; }
    long before = hwm_kb(), results = 0;
    char req[256], *item = NULL, *all = NULL;
    AzBatchStatus rc;
    if (stream && batch_open(b, NULL) != AZBATCH_OK) return 1;
    for (long i = 0; i < n; i++) {
        snprintf(req, sizeof req, "{\"url\":\"/subscriptions/00000000-0000-4000-8000-%012ld?api-version=2022-12-01&n=%ld\"}", i % 1000, i);
        while ((rc = batch_add(b, req, NULL)) == AZBATCH_FULL) {
            while (batch_next(b, 20, &item) == AZBATCH_OK) { results++; batch_string_free(item); }
        }
        if (rc != AZBATCH_OK) { fprintf(stderr, "batch_add %ld: %d\n", i, rc); return 1; }
    }
    if (stream) {
        batch_close_input(b, NULL);
        while ((rc = batch_next(b, 1000, &item)) != AZBATCH_DONE) {
            if (rc == AZBATCH_OK) { results++; batch_string_free(item); }
            else if (rc != AZBATCH_TIMEOUT) { fprintf(stderr, "batch_next: %d\n", rc); return 1; }
        }
    } else {
        if (batch_execute(b, &all, &err) != AZBATCH_OK) { fprintf(stderr, "batch_execute: %s\n", err); return 1; }
        results = n;
        printf("result text: %.1f MB\n", strlen(all) / 1048576.0);
        batch_string_free(all);
    }
    batch_free(b);
    { FILE *f = fopen("/proc/self/status", "r"); char l[256]; while (f && fgets(l, sizeof l, f)) if (strncmp(l, "Rss", 3) == 0 || strncmp(l, "VmData", 6) == 0) fputs(l, stdout); if (f) fclose(f); }
    printf("%s: %ld results; peak RSS %.1f MB (%.1f MB before the run)\n", argv[4], results, hwm_kb() / 1024.0, before / 1024.0);
    return 0;
}
