//! The bad-input table: for every entry point (options, requests, C ABI
//! arguments, server answers) each row gives an input and the exact error it
//! must get (what and where), or the handling it must get. The command line's
//! rows (lines, fields, UTF-16, exit codes) are in `crates/cli/tests/cli.rs`.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::sync::Arc;

use azbatch::ffi::{self, status::AzBatchStatus};
use azbatch::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use azbatch::{Job, Options};
use futures::future::BoxFuture;
use serde_json::{json, Value};

fn check(entry: &str, input: &str, got: &str, want: &str, table: &mut Vec<String>) {
    let ok = got.contains(want);
    let shown = input.replace('\n', "\\n");
    table.push(format!(
        "| {entry} | `{shown}` | {want} | {} |",
        if ok { "ok" } else { "WRONG" }
    ));
    assert!(ok, "{entry}: {input}\n  want: {want}\n  got:  {got}");
}

/// Options JSON → the error it must get.
const OPTIONS: &[(&str, &str)] = &[
    (r#"{"endpoint":"https://x"}"#, "missing field `api`"),
    (
        r#"{"api":"arm","batchsize":5}"#,
        "unknown field `batchsize`",
    ),
    (
        r#"{"api":"arm","batchSize":501}"#,
        "batchSize must be between 1 and 500 (got 501)",
    ),
    (
        r#"{"api":"graph","batchSize":21}"#,
        "batchSize must be between 1 and 20 (got 21)",
    ),
    (
        r#"{"api":"arm","concurrency":0}"#,
        "concurrency must be between 1 and 256 (got 0)",
    ),
    (
        r#"{"api":"arm","timeoutSeconds":-1}"#,
        "timeoutSeconds must be more than 0",
    ),
    (
        r#"{"api":"arm","attemptTimeoutSeconds":0}"#,
        "attemptTimeoutSeconds must be more than 0",
    ),
    (r#"{"api":"arm","token":"ab\ncd"}"#, "character 3 of 5"),
    (r#"{"api":"arm","token":"  "}"#, "token is empty"),
    (
        r#"{"api":"arm","token":"t","auth":{"type":"azureCli"}}"#,
        "give \"token\" or \"auth\", not both",
    ),
    (
        r#"{"api":"arm","auth":{"type":"password"}}"#,
        "auth.type must be",
    ),
    (r#"{"api":"arm","cloud":"Mars"}"#, "cloud must be"),
    (
        r#"{"api":"arm","endpoint":"http://example.com"}"#,
        "http:// is allowed only for loopback hosts",
    ),
    (r#"{"api":"arm","journal":" "}"#, "journal is an empty path"),
    (
        r#"{"api":"arm","batchSize":"20"}"#,
        "invalid type: string \"20\", expected u64",
    ),
    (r#"{"api":"arm""#, "not valid JSON"),
];

/// (api, request JSON added after `{"id":"one","url":"/a"}`) → the error it must get.
const REQUESTS: &[(&str, &str, &str)] = &[
    (
        "arm",
        r#"{"url":5}"#,
        "request[1]: field \"url\": invalid type: integer `5`, expected a string",
    ),
    (
        "arm",
        r#"{"id":"q","url":"/a","dependsOn":"x"}"#,
        "request[1] (id \"q\"): field \"dependsOn\": invalid type",
    ),
    (
        "arm",
        r#"{"url":"/a","method":"FETCH"}"#,
        "field \"method\": must be one of",
    ),
    (
        "arm",
        r#"{"url":"/a","body":{"a":1}}"#,
        "field \"body\": a GET request cannot have a body",
    ),
    (
        "arm",
        r#"{"url":"https://evil.example/x"}"#,
        "field \"url\": \"https://evil.example\" is not on the endpoint",
    ),
    (
        "arm",
        r#"{"url":"relative"}"#,
        "field \"url\": \"relative\" is neither a path",
    ),
    (
        "arm",
        r#"{"id":"one","url":"/b"}"#,
        "request[1] (id \"one\"): field \"id\": duplicate",
    ),
    (
        "arm",
        r#"{"url":"/a","followLinks":true}"#,
        "request[1]: unknown field `followLinks`",
    ),
    (
        "arm",
        r#"{"url":"/a","headers":{"x-custom":"1"}}"#,
        "field \"headers\": ARM batch items cannot carry the header",
    ),
    (
        "arm",
        r#"{"url":"/a","method":"POST","body":"aGk=","bodyEncoding":"base64"}"#,
        "field \"bodyEncoding\": ARM batch items carry JSON content only",
    ),
    (
        "graph",
        r#"{"url":"/users","headers":{"Authorization":"Bearer x"}}"#,
        "\"Authorization\" is set by AzBatch",
    ),
    (
        "graph",
        r#"{"id":"z","url":"/u/{{one.body.id}}"}"#,
        "reads request \"one\", which is not in dependsOn",
    ),
    (
        "graph",
        r#"{"id":"z","url":"/a","dependsOn":["z"]}"#,
        "field \"dependsOn\": a request cannot depend on itself",
    ),
    (
        "graph",
        r#"{"url":"/a","method":"POST","body":"%%","bodyEncoding":"base64"}"#,
        "field \"body\": is not valid base64",
    ),
];

fn print(t: &[String]) {
    println!(
        "\n| entry point | input | error or handling | |\n|---|---|---|---|\n{}",
        t.join("\n")
    );
}

#[test]
fn options() {
    let mut t = vec![];
    for (input, want) in OPTIONS {
        let got = Options::from_json(input).map_or_else(|e| e.to_string(), |_| "accepted".into());
        check("options", input, &got, want, &mut t);
    }
    print(&t);
}

#[test]
fn requests() {
    let mut t = vec![];
    let options =
        |api: &str| Options::from_json(&json!({"api": api, "token": "t"}).to_string()).unwrap();
    let add = |api: &str, input: &str| {
        let job = Job::new(options(api));
        job.add_json(r#"{"id":"one","url":"/a"}"#).unwrap();
        job.add_json(input)
            .map_or_else(|e| e.to_string(), |_| "accepted".into())
    };
    for (api, input, want) in REQUESTS {
        check(
            &format!("{api} request"),
            input,
            &add(api, input),
            want,
            &mut t,
        );
    }
    let big = format!(
        r#"{{"method":"PUT","url":"/x?api-version=1","body":{{"b":"{}"}}}}"#,
        "x".repeat(4_000_000)
    );
    check(
        "arm request",
        "a PUT with a 4,000,000-byte body",
        &add("arm", &big),
        "field \"body\": makes the request",
        &mut t,
    );
    // A cycle is refused when it closes; an unknown dependsOn when the run starts.
    let job = Job::new(options("graph"));
    job.add_json(r#"{"id":"a","url":"/a","dependsOn":["b"]}"#)
        .unwrap();
    let got = job
        .add_json(r#"{"id":"b","url":"/b","dependsOn":["a"]}"#)
        .unwrap_err()
        .to_string();
    check(
        "graph request",
        "a -> b -> a",
        &got,
        "field \"dependsOn\": makes a cycle: b -> a -> b",
        &mut t,
    );
    let got = job.start().unwrap_err().to_string();
    check(
        "start",
        "dependsOn [\"b\"], never added",
        &got,
        "request[0] (id \"a\"): field \"dependsOn\": no request has the id \"b\"",
        &mut t,
    );
    print(&t);
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The error text a C ABI call wrote, freed.
unsafe fn take(e: *mut c_char) -> String {
    if e.is_null() {
        return String::new();
    }
    let s = CStr::from_ptr(e).to_string_lossy().into_owned();
    ffi::batch_string_free(e);
    s
}

/// Checks a C ABI call's status and the error text it wrote (freed).
unsafe fn expect(
    t: &mut Vec<String>,
    call: (AzBatchStatus, *mut c_char),
    want: (AzBatchStatus, &str),
    entry: &str,
    input: &str,
) {
    assert_eq!(call.0, want.0, "{entry}: {input}");
    check(entry, input, &take(call.1), want.1, t);
}

#[test]
fn c_abi_arguments() {
    use AzBatchStatus::*;
    let mut t = vec![];
    unsafe {
        let (mut b, mut e) = (std::ptr::null_mut(), std::ptr::null_mut());
        let rc = ffi::batch_new(std::ptr::null(), &mut b, &mut e);
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_NULL_ARGUMENT, "options_json is NULL"),
            "batch_new",
            "options_json NULL",
        );
        let rc = ffi::batch_new(
            c("{\"api\":\"arm\"}").as_ptr(),
            std::ptr::null_mut(),
            &mut e,
        );
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_NULL_ARGUMENT, "batch_out is NULL"),
            "batch_new",
            "batch_out NULL",
        );
        let bad = [b'{', 0xff, b'}', 0];
        let rc = ffi::batch_new(bad.as_ptr().cast(), &mut b, &mut e);
        let want = "options_json is not UTF-8: invalid utf-8 sequence of 1 bytes from index 1";
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_INVALID_UTF8, want),
            "batch_new",
            "bytes 7b ff 7d",
        );
    }
    print(&t);
}

#[test]
fn c_abi_calls_on_a_batch() {
    use AzBatchStatus::*;
    let mut t = vec![];
    unsafe {
        let (mut b, mut e) = (std::ptr::null_mut(), std::ptr::null_mut());
        let rc = ffi::batch_new(
            c("{\"api\":\"arm\",\"token\":\"t\"}").as_ptr(),
            &mut b,
            &mut e,
        );
        assert_eq!(rc, AZBATCH_OK);
        let rc = ffi::batch_add(b, c("{\"url\":true}").as_ptr(), &mut e);
        let want = "request[0]: field \"url\": invalid type: boolean `true`";
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_INVALID_VALUE, want),
            "batch_add",
            "{\"url\":true}",
        );
        let rc = ffi::batch_add(b, c("{\"url\":").as_ptr(), &mut e);
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_INVALID_JSON, "request[0]: not valid JSON"),
            "batch_add",
            "{\"url\":",
        );
        let rc = ffi::batch_set_token(b, c("ab\ncd").as_ptr(), &mut e);
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_INVALID_VALUE, "character 3 of 5"),
            "batch_set_token",
            "ab\ncd",
        );
        let rc = ffi::batch_set_token(b, c("fresh").as_ptr(), &mut e);
        let want = "start the job before handing it a token";
        expect(
            &mut t,
            (rc, e),
            (AZBATCH_ERR_WRONG_STATE, want),
            "batch_set_token",
            "before start",
        );
        let mut item = std::ptr::null_mut();
        assert_eq!(ffi::batch_next(b, 0, &mut item), AZBATCH_ERR_WRONG_STATE);
        assert_eq!(
            ffi::batch_next(std::ptr::null_mut(), 0, &mut item),
            AZBATCH_ERR_NULL_ARGUMENT
        );
        assert!(item.is_null(), "no result is handed out on an error");
        ffi::batch_free(b);
    }
    print(&t);
}

/// A server that answers every batch with the same bytes.
struct Fixed(u16, Vec<(String, String)>, Vec<u8>);

impl Transport for Fixed {
    fn send(&self, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        let r = HttpResponse {
            status: self.0,
            headers: self.1.clone(),
            body: self.2.clone(),
        };
        Box::pin(async move { Ok(r) })
    }
}

#[test]
fn server_answers() {
    let mut t = vec![];
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let rows: Vec<(&str, &str, Fixed, &str)> = vec![
        ("arm", "200, not JSON", Fixed(200, vec![], b"<html>busy</html>".to_vec()), "InvalidResponse"),
        ("arm", "200, no responses", Fixed(200, vec![], br#"{"other":1}"#.to_vec()), "InvalidResponse"),
        ("arm", "200, an item without a name", Fixed(200, vec![], br#"{"responses":[{"httpStatusCode":200}]}"#.to_vec()), "InvalidResponse"),
        ("arm", "200, the item named twice", Fixed(200, vec![], br#"{"responses":[{"name":"0","httpStatusCode":200},{"name":"0","httpStatusCode":200}]}"#.to_vec()), "answered this request twice"),
        ("arm", "302 to login", Fixed(302, h("Location", "https://login.example/x"), vec![]), "Redirected"),
        ("arm", "202 to another host", Fixed(202, h("Location", "https://evil.example/op"), vec![]), "ForeignHost"),
        ("arm", "400 with a cloud error", Fixed(400, vec![], br#"{"error":{"code":"InvalidBatch","message":"bad"}}"#.to_vec()), "InvalidBatch"),
        ("graph", "200, an image body that is not base64: kept as sent", Fixed(200, vec![], br#"{"responses":[{"id":"0","status":200,"headers":{"Content-Type":"image/png"},"body":"%%%"}]}"#.to_vec()), "\"body\":\"%%%\""),
        ("graph", "200, status is text", Fixed(200, vec![], br#"{"responses":[{"id":"0","status":"200"}]}"#.to_vec()), "InvalidResponse"),
    ];
    for (api, input, server, want) in rows {
        let o = Options::from_json(
            &json!({"api": api, "token": "t", "maxAttempts": 2, "jitter": false}).to_string(),
        )
        .unwrap();
        let job = Job::with_transport(o, Arc::new(server));
        job.add_json(r#"{"url":"/a?api-version=1"}"#).unwrap();
        let run = job.execute().unwrap();
        assert_eq!(run.results.len(), 1, "one result, whatever the answer");
        let got = serde_json::to_string(&run.results[0]).unwrap();
        check(&format!("{api} answer"), input, &got, want, &mut t);
        let v: Value = serde_json::from_str(&got).unwrap();
        assert!(
            v["status"] != 200 || v["error"].is_null() || want.contains("status"),
            "{got}"
        );
    }
    println!(
        "\n| entry point | input | result | |\n|---|---|---|---|\n{}",
        t.join("\n")
    );
}
