/*
 * Drives the AzBatch C ABI the way a C or P/Invoke caller does: a normal run,
 * streaming, NULL arguments, bad JSON, unknown options, cancel mid-run, and a
 * free for everything handed out. Run under AddressSanitizer and valgrind by
 * tests/c/run.sh against the emulator.
 *
 * usage: abi_test ENDPOINT TOKEN [RUN-TAG]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "azbatch.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

static int count(const char *haystack, const char *needle) {
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static char options[1024];
static char url[256];
static const char *token_arg = "";

static AzBatch *new_batch(const char *extra) {
    char text[2048];
    char *err = NULL;
    AzBatch *b = NULL;
    snprintf(text, sizeof text, "%s%s}", options, extra);
    AzBatchStatus rc = batch_new(text, &b, &err);
    CHECK(rc == AZBATCH_OK && b != NULL, "batch_new: %d %s", rc, err ? err : "(no message)");
    batch_string_free(err);
    return b;
}

static void add_pim(AzBatch *b, int n, int subs) {
    for (int i = 0; i < n; i++) {
        char req[512];
        char *err = NULL;
        snprintf(req, sizeof req,
                 "{\"url\":\"/subscriptions/00000000-0000-4000-8000-%012d/providers/"
                 "Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01\"}",
                 i % subs);
        int rc = batch_add(b, req, &err);
        CHECK(rc == AZBATCH_OK, "batch_add %d: %d %s", i, rc, err ? err : "");
        batch_string_free(err);
    }
}

static void test_version(void) {
    CHECK(strcmp(batch_version(), AZBATCH_VERSION) == 0, "batch_version() = %s", batch_version());
    char *info = NULL;
    CHECK(batch_info(&info) == AZBATCH_OK, "batch_info");
    CHECK(info && strstr(info, "\"version\":\"" AZBATCH_VERSION "\"") && strstr(info, "\"armMaxBatchSize\":500")
              && strstr(info, "\"name\":\"AzureChinaCloud\""),
          "batch_info: %s", info ? info : "(none)");
    batch_string_free(info);
}

static void test_error_out_is_cleared_on_success(void) {
    static char stale[] = "an earlier message, already freed";
    char *err = stale;
    AzBatch *b = NULL;
    CHECK(batch_new("{\"api\":\"arm\",\"endpoint\":\"http://127.0.0.1:9\",\"token\":\"t\"}", &b, &err) == AZBATCH_OK,
          "batch_new");
    CHECK(err == NULL, "error_out cleared on success");
    err = stale;
    CHECK(batch_add(b, "{\"url\":\"/subscriptions/x?api-version=1\"}", &err) == AZBATCH_OK && err == NULL,
          "batch_add clears error_out on success");
    AzBatchProgress p;
    CHECK(sizeof p == 72, "AzBatchProgress is 72 bytes (replayed last)");
    CHECK(batch_progress(b, &p) == AZBATCH_OK && p.total == 0 && p.replayed == 0,
          "before the run starts it has taken nothing in, and replayed nothing");
    batch_free(b);
}

static void test_url_api(void) {
    const char *cases[][2] = {
        {"/users/1", "graph"},
        {"me/messages", "graph"},
        {"/subscriptions/s/resourceGroups?api-version=2021-04-01", "arm"},
        {"/providers/Microsoft.Management/managementGroups", "arm"},
        {"/whatever", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *api = NULL;
        CHECK(batch_url_api(cases[i][0], &api) == AZBATCH_OK && api && strcmp(api, cases[i][1]) == 0,
              "batch_url_api(%s) = %s", cases[i][0], api ? api : "(none)");
        batch_string_free(api);
    }
    char *api = NULL;
    CHECK(batch_url_api(NULL, &api) == AZBATCH_ERR_NULL_ARGUMENT && api == NULL, "batch_url_api(NULL)");
    CHECK(batch_url_api("/users", NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_url_api without api_out");
}

static void test_request_json(void) {
    char *json = NULL, *err = NULL;
    const char *peer = "{\"SubscriptionId\":\"s1\",\"ResourceGroupName\":\"g\",\"ApiVersion\":\"2021-04-01\","
                       "\"Method\":\"PUT\",\"Payload\":\"{\\\"location\\\":\\\"westeurope\\\"}\"}";
    CHECK(batch_request_json(peer, 0, &json, &err) == AZBATCH_OK && json && err == NULL,
          "batch_request_json: %s", err ? err : "(no error)");
    CHECK(json && strstr(json, "\"url\":\"/subscriptions/s1/resourceGroups/g?api-version=2021-04-01\"")
              && strstr(json, "\"body\":{\"location\":\"westeurope\"}") && !strstr(json, "ayload"),
          "Invoke-AzRestMethod's shape in the library's fields: %s", json ? json : "(none)");
    batch_string_free(json);
    json = NULL;
    CHECK(batch_request_json("{\"Path\":\"/x\",\"Payload\":\"{no\"}", 7, &json, &err) == AZBATCH_ERR_INVALID_VALUE
              && json == NULL && err && strstr(err, "request[7]") && strstr(err, "payload"),
          "a bad Payload is named: %s", err ? err : "(none)");
    batch_string_free(err);
    err = NULL;
    CHECK(batch_request_json(NULL, 0, &json, &err) == AZBATCH_ERR_NULL_ARGUMENT, "batch_request_json(NULL)");
    batch_string_free(err);
    CHECK(batch_request_json("{}", 0, NULL, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_request_json without json_out");
}

static void test_null_arguments(void) {
    char *err = NULL;
    AzBatch *none = NULL;
    CHECK(batch_new(NULL, &none, &err) == AZBATCH_ERR_NULL_ARGUMENT && none == NULL, "batch_new(NULL)");
    CHECK(err && strstr(err, "options_json is NULL"), "message: %s", err ? err : "(none)");
    batch_string_free(err);
    CHECK(batch_new(NULL, &none, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_new(NULL, NULL)");
    err = NULL;
    CHECK(batch_new("{\"api\":\"arm\"}", NULL, &err) == AZBATCH_ERR_NULL_ARGUMENT, "batch_new without batch_out");
    CHECK(err && strstr(err, "batch_out is NULL"), "message: %s", err ? err : "(none)");
    batch_string_free(err);
    CHECK(batch_info(NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_info(NULL)");

    err = NULL;
    CHECK(batch_add(NULL, "{\"url\":\"/x\"}", &err) == AZBATCH_ERR_NULL_ARGUMENT, "batch_add(NULL batch)");
    CHECK(err && strstr(err, "batch is NULL"), "message: %s", err ? err : "(none)");
    batch_string_free(err);

    AzBatch *b = new_batch("");
    err = NULL;
    CHECK(batch_add(b, NULL, &err) == AZBATCH_ERR_NULL_ARGUMENT, "batch_add(NULL json)");
    batch_string_free(err);
    CHECK(batch_add(b, NULL, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_add without error_out");
    CHECK(batch_start(NULL, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_start(NULL)");
    CHECK(batch_execute(NULL, NULL, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_execute(NULL)");
    CHECK(batch_next(NULL, 0, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_next(NULL)");
    CHECK(batch_next(b, 0, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_next without item_out");
    err = NULL;
    CHECK(batch_execute(b, NULL, &err) == AZBATCH_ERR_NULL_ARGUMENT, "batch_execute without result_out");
    CHECK(err && strstr(err, "result_out is NULL"), "message: %s", err ? err : "(none)");
    batch_string_free(err);
    AzBatchProgress p;
    CHECK(batch_progress(NULL, &p) == AZBATCH_ERR_NULL_ARGUMENT, "batch_progress(NULL batch)");
    CHECK(batch_progress(b, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_progress(NULL out)");
    CHECK(batch_cancel(NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_cancel(NULL)");
    err = NULL;
    CHECK(batch_set_token(b, "t", &err) == AZBATCH_ERR_WRONG_STATE, "a token before the start");
    batch_string_free(err);
    batch_free(NULL);
    batch_string_free(NULL);
    batch_free(b);
}

static void test_bad_input(void) {
    char *err = NULL;
    AzBatch *none = NULL;
    CHECK(batch_new("{\"api\":", &none, &err) == AZBATCH_ERR_INVALID_JSON && none == NULL, "truncated options");
    CHECK(err && strstr(err, "not valid JSON"), "message: %s", err ? err : "(none)");
    batch_string_free(err);

    err = NULL;
    CHECK(batch_new("{\"api\":\"arm\",\"batchsize\":5}", &none, &err) == AZBATCH_ERR_INVALID_VALUE, "unknown option");
    CHECK(err && strstr(err, "unknown field `batchsize`"), "message: %s", err ? err : "(none)");
    batch_string_free(err);

    err = NULL;
    CHECK(batch_new("{\"api\":\"arm\",\"endpoint\":\"http://example.com\"}", &none, &err) == AZBATCH_ERR_INVALID_VALUE, "http on a public host");
    CHECK(none == NULL, "no handle on failure");
    batch_string_free(err);

    AzBatch *b = new_batch("");
    err = NULL;
    CHECK(batch_add(b, "{\"url\":", &err) == AZBATCH_ERR_INVALID_JSON, "bad request JSON");
    batch_string_free(err);
    err = NULL;
    int rc = batch_add(b, "{\"id\":\"x\",\"url\":\"https://evil.example/steal\"}", &err);
    CHECK(rc == AZBATCH_ERR_INVALID_VALUE, "foreign host: %d", rc);
    CHECK(err && strstr(err, "request[0] (id \"x\"): field \"url\""), "message: %s", err ? err : "(none)");
    batch_string_free(err);
    CHECK(batch_add(b, "{\"id\":\"dup\",\"url\":\"/a\"}", NULL) == AZBATCH_OK, "first dup");
    err = NULL;
    CHECK(batch_add(b, "{\"id\":\"DUP\",\"url\":\"/b\"}", &err) == AZBATCH_ERR_INVALID_VALUE, "duplicate id");
    CHECK(err && strstr(err, "duplicate"), "message: %s", err ? err : "(none)");
    batch_string_free(err);
    CHECK(batch_add(b, "{\"url\":\"/\xff\"}", NULL) == AZBATCH_ERR_INVALID_UTF8, "invalid UTF-8");
    char *none_yet = NULL;
    CHECK(batch_next(b, 0, &none_yet) == AZBATCH_ERR_WRONG_STATE && none_yet == NULL, "next before start");
    batch_free(b);
}

static void test_execute(void) {
    AzBatch *b = new_batch("");
    add_pim(b, 30, 30);
    char *result = NULL, *err = NULL;
    int rc = batch_execute(b, &result, &err);
    CHECK(rc == AZBATCH_OK, "batch_execute: %d %s", rc, err ? err : "");
    CHECK(err == NULL, "error_out untouched on success");
    CHECK(result && count(result, "\"status\":200") == 30, "30 successes");
    CHECK(result && strstr(result, "\"summary\":{") && strstr(result, "\"total\":30"), "summary");
    CHECK(result && strstr(result, "\"id\":\"0\""), "first id");
    batch_string_free(result);
    err = NULL;
    CHECK(batch_add(b, "{\"url\":\"/x\"}", &err) == AZBATCH_ERR_WRONG_STATE, "add after execute");
    batch_string_free(err);
    CHECK(batch_start(b, NULL) == AZBATCH_ERR_WRONG_STATE, "start twice");
    AzBatchProgress p;
    CHECK(batch_progress(b, &p) == AZBATCH_OK && p.total == 30 && p.completed == 30 && p.succeeded == 30, "progress");
    char *left = NULL;
    CHECK(batch_next(b, 0, &left) == AZBATCH_DONE && left == NULL, "nothing left");
    batch_free(b);
}

static void test_streaming(void) {
    AzBatch *b = new_batch(",\"batchSize\":4");
    add_pim(b, 12, 12);
    char req[1024];
    snprintf(req, sizeof req, "{\"id\":\"last\",\"url\":\"%s\"}", url);
    CHECK(batch_add(b, req, NULL) == AZBATCH_OK, "named request");
    CHECK(batch_start(b, NULL) == AZBATCH_OK, "start");
    int items = 0, named = 0, rc;
    char *item = NULL;
    /* A NULL item_out is refused before a result is taken: none is lost. */
    CHECK(batch_next(b, 2000, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "batch_next without item_out");
    while ((rc = batch_next(b, 2000, &item)) != AZBATCH_DONE) {
        if (rc == AZBATCH_TIMEOUT) continue;
        CHECK(rc == AZBATCH_OK && item, "batch_next item: %d", rc);
        if (rc != AZBATCH_OK) break;
        items++;
        if (strstr(item, "\"id\":\"last\"")) named++;
        batch_string_free(item);
        item = NULL;
    }
    CHECK(items == 13, "13 results, got %d", items);
    AzBatchProgress p;
    batch_progress(b, &p);
    CHECK(p.completed == 13 && p.in_flight == 0 && p.batches >= 4, "progress %llu/%llu", (unsigned long long)p.completed, (unsigned long long)p.batches);
    CHECK(named <= 1, "the named request came at most once");
    batch_free(b);
}

static void test_unicode_roundtrip(void) {
    AzBatch *b = new_batch("");
    char req[1024];
    snprintf(req, sizeof req, "{\"id\":\"\xc3\xbc" "ber-\xe6\x9d\xb1\xe4\xba\xac\",\"url\":\"%s\"}", url);
    CHECK(batch_add(b, req, NULL) == AZBATCH_OK, "unicode id");
    char *result = NULL;
    CHECK(batch_execute(b, &result, NULL) == AZBATCH_OK, "execute");
    CHECK(result && strstr(result, "\"id\":\"\xc3\xbc" "ber-\xe6\x9d\xb1\xe4\xba\xac\""), "id round trip: %s", result ? result : "");
    batch_string_free(result);
    batch_free(b);
}

static void test_cancel(void) {
    AzBatch *b = new_batch(",\"batchSize\":2,\"concurrency\":1");
    add_pim(b, 40, 10);
    CHECK(batch_start(b, NULL) == AZBATCH_OK, "start");
    char *item = NULL;
    int rc;
    while ((rc = batch_next(b, 5000, &item)) == AZBATCH_TIMEOUT) {}
    CHECK(rc == AZBATCH_OK, "first result: %d", rc);
    batch_string_free(item);
    CHECK(batch_cancel(b) == AZBATCH_OK, "cancel");
    CHECK(batch_cancel(b) == AZBATCH_OK, "cancel twice");
    int results = 1, cancelled = 0;
    while ((rc = batch_next(b, 5000, &item)) != AZBATCH_DONE) {
        if (rc == AZBATCH_TIMEOUT) continue;
        CHECK(rc == AZBATCH_OK, "drain: %d", rc);
        if (rc != AZBATCH_OK) break;
        results++;
        if (strstr(item, "\"code\":\"Cancelled\"")) cancelled++;
        batch_string_free(item);
    }
    CHECK(results == 40, "every request once: %d", results);
    CHECK(cancelled >= 30, "most were cancelled: %d", cancelled);
    batch_free(b);

    /* Cancel before start, and free a batch that was never started. */
    b = new_batch("");
    add_pim(b, 3, 3);
    batch_cancel(b);
    char *err = NULL;
    CHECK(batch_start(b, &err) == AZBATCH_ERR_CANCELLED, "start after cancel");
    batch_string_free(err);
    batch_free(b);
    b = new_batch("");
    add_pim(b, 3, 3);
    batch_free(b);
}

/* Several threads on one batch: two take results, one reads progress, one
 * cancels mid-run; the main thread frees it once they are done. */
struct shared {
    AzBatch *b;
    pthread_mutex_t lock;
    int results, done_readers, bad_snapshots, snapshots;
};

static void *reader(void *arg) {
    struct shared *s = arg;
    for (;;) {
        char *item = NULL;
        int rc = batch_next(s->b, 50, &item);
        if (rc == AZBATCH_DONE) break;
        if (rc == AZBATCH_TIMEOUT) continue;
        if (rc != AZBATCH_OK) { pthread_mutex_lock(&s->lock); s->results = -100000; pthread_mutex_unlock(&s->lock); break; }
        batch_string_free(item);
        pthread_mutex_lock(&s->lock);
        s->results++;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_lock(&s->lock);
    s->done_readers++;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *watcher(void *arg) {
    struct shared *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int readers = s->done_readers;
        pthread_mutex_unlock(&s->lock);
        if (readers == 2) break;
        AzBatchProgress p;
        int rc = batch_progress(s->b, &p);
        int ok = rc == AZBATCH_OK && p.completed == p.succeeded + p.failed && p.completed <= p.total;
        pthread_mutex_lock(&s->lock);
        s->snapshots++;
        if (!ok) s->bad_snapshots++;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void *canceller(void *arg) {
    struct shared *s = arg;
    struct timespec t = {0, 300 * 1000 * 1000};
    nanosleep(&t, NULL);
    batch_cancel(s->b);
    batch_cancel(s->b);
    return NULL;
}

static void test_threads(void) {
    struct shared s = {0};
    pthread_mutex_init(&s.lock, NULL);
    s.b = new_batch(",\"batchSize\":5,\"concurrency\":2");
    add_pim(s.b, 300, 10);
    CHECK(batch_start(s.b, NULL) == AZBATCH_OK, "start");
    pthread_t t[4];
    pthread_create(&t[0], NULL, reader, &s);
    pthread_create(&t[1], NULL, reader, &s);
    pthread_create(&t[2], NULL, watcher, &s);
    pthread_create(&t[3], NULL, canceller, &s);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(s.results == 300, "every request exactly once across two readers: %d", s.results);
    CHECK(s.snapshots > 0 && s.bad_snapshots == 0, "progress consistent: %d of %d snapshots disagreed", s.bad_snapshots, s.snapshots);
    char *item = NULL;
    CHECK(batch_next(s.b, 0, &item) == AZBATCH_DONE, "done stays done");
    batch_free(s.b);
    pthread_mutex_destroy(&s.lock);
}

static char graph_options[1024];
static const char *run_tag = "run";

static void test_graph_dependencies(void) {
    char *err = NULL;
    AzBatch *b = NULL;
    CHECK(batch_new(graph_options, &b, &err) == AZBATCH_OK && b != NULL, "graph batch_new: %s", err ? err : "");
    batch_string_free(err);
    if (!b) return;
    /* Added before the request it depends on; reads its new id. */
    CHECK(batch_add(b, "{\"id\":\"lic\",\"method\":\"POST\",\"url\":\"/users/{{u.body.id}}/assignLicense\","
                       "\"dependsOn\":[\"u\"],\"body\":{\"addLicenses\":[{\"skuId\":\"c7df2760-2c81-4ef7-b578-5b5392b571df\"}],"
                       "\"removeLicenses\":[]}}", NULL) == AZBATCH_OK, "add lic");
    char user[512];
    snprintf(user, sizeof user, "{\"id\":\"u\",\"method\":\"POST\",\"url\":\"/users\","
             "\"body\":{\"displayName\":\"C\",\"userPrincipalName\":\"c-abi-%s@contoso.example\"}}", run_tag);
    CHECK(batch_add(b, user, NULL) == AZBATCH_OK, "add u");
    err = NULL;
    CHECK(batch_add(b, "{\"id\":\"x\",\"url\":\"/users/{{u.body.id}}\"}", &err) == AZBATCH_ERR_INVALID_VALUE, "reference outside dependsOn");
    CHECK(err && strstr(err, "not in dependsOn"), "message: %s", err ? err : "");
    batch_string_free(err);
    char *result = NULL;
    CHECK(batch_execute(b, &result, NULL) == AZBATCH_OK, "graph execute");
    CHECK(result && strstr(result, "\"id\":\"lic\",\"status\":200") && strstr(result, "\"id\":\"u\",\"status\":201"),
          "dependency ran after its user: %s", result ? result : "");
    batch_string_free(result);
    batch_free(b);
}

/* An open input: requests added while results are taken, AZBATCH_FULL when the
   run has enough to do (nothing added: take results, then add again), a request
   added before the one it depends on, and the end of the input. */
static void test_open_input(void) {
    AzBatch *b = new_batch(",\"batchSize\":5,\"concurrency\":2");
    char *err = NULL;
    CHECK(batch_add(b, "{\"id\":\"late\",\"url\":\"/subscriptions/00000000-0000-4000-8000-000000000002?api-version=2022-12-01\",\"dependsOn\":[\"early\"]}", &err) == AZBATCH_OK, "depends on one not added yet: %s", err ? err : "");
    batch_string_free(err);
    CHECK(batch_open(b, NULL) == AZBATCH_OK, "open");
    CHECK(batch_open(b, NULL) == AZBATCH_ERR_WRONG_STATE, "open twice");
    int added = 0, results = 0, full = 0, rc;
    char *item = NULL;
    while (added < 1500) {
        char req[256];
        snprintf(req, sizeof req, "{\"url\":\"/subscriptions/00000000-0000-4000-8000-%012d?api-version=2022-12-01&n=%d\"}", added % 40, added);
        err = NULL;
        rc = batch_add(b, req, &err);
        if (rc == AZBATCH_FULL) {
            full++;
            CHECK(err && strstr(err, "input is full"), "the note says why: %s", err ? err : "(none)");
            batch_string_free(err);
            while ((rc = batch_next(b, 50, &item)) == AZBATCH_OK) { results++; batch_string_free(item); item = NULL; }
            CHECK(rc == AZBATCH_TIMEOUT, "results while the input is open: %d", rc);
            continue;
        }
        CHECK(rc == AZBATCH_OK, "add %d: %d %s", added, rc, err ? err : "");
        batch_string_free(err);
        if (rc != AZBATCH_OK) break;
        added++;
    }
    CHECK(full > 0, "a fast producer was told to wait (%d times)", full);
    const char *early = "{\"id\":\"early\",\"url\":\"/subscriptions/00000000-0000-4000-8000-000000000003?api-version=2022-12-01\"}";
    while ((rc = batch_add(b, early, NULL)) == AZBATCH_FULL) {
        while (batch_next(b, 50, &item) == AZBATCH_OK) { results++; batch_string_free(item); item = NULL; }
    }
    CHECK(rc == AZBATCH_OK, "the dependency, added last: %d", rc);
    err = NULL;
    CHECK(batch_set_token(b, "", &err) == AZBATCH_ERR_INVALID_VALUE, "an empty token is refused");
    batch_string_free(err);
    CHECK(batch_set_token(b, NULL, NULL) == AZBATCH_ERR_NULL_ARGUMENT, "a NULL token is refused");
    CHECK(batch_set_token(b, token_arg, NULL) == AZBATCH_OK, "a fresh token for a running batch");
    CHECK(batch_close_input(b, NULL) == AZBATCH_OK && batch_close_input(b, NULL) == AZBATCH_OK, "close (twice is fine)");
    int late_ok = 0;
    while ((rc = batch_next(b, 2000, &item)) != AZBATCH_DONE) {
        if (rc == AZBATCH_TIMEOUT) continue;
        CHECK(rc == AZBATCH_OK, "batch_next: %d", rc);
        if (rc != AZBATCH_OK) break;
        results++;
        if (strstr(item, "\"id\":\"late\"") && strstr(item, "\"status\":200")) late_ok = 1;
        batch_string_free(item);
        item = NULL;
    }
    CHECK(results == 1502, "every request exactly once: %d", results);
    CHECK(late_ok, "the request added before its dependency ran after it");
    err = NULL;
    CHECK(batch_add(b, "{\"url\":\"/x\"}", &err) == AZBATCH_ERR_WRONG_STATE, "no adds after the input closed");
    batch_string_free(err);
    batch_free(b);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s ENDPOINT TOKEN [RUN-TAG]\n", argv[0]);
        return 2;
    }
    token_arg = argv[2];
    if (argc == 4) run_tag = argv[3]; /* keeps created users unique when runs share an emulator */
    snprintf(options, sizeof options, "{\"api\":\"arm\",\"endpoint\":\"%s\",\"token\":\"%s\",\"jitter\":false", argv[1], argv[2]);
    snprintf(graph_options, sizeof graph_options, "{\"api\":\"graph\",\"endpoint\":\"%s\",\"token\":\"%s\"}", argv[1], argv[2]);
    snprintf(url, sizeof url, "/subscriptions/00000000-0000-4000-8000-000000000001?api-version=2022-12-01");
    test_version();
    test_url_api();
    test_request_json();
    test_error_out_is_cleared_on_success();
    test_null_arguments();
    test_bad_input();
    test_execute();
    test_streaming();
    test_open_input();
    test_unicode_roundtrip();
    test_cancel();
    test_threads();
    test_graph_dependencies();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
