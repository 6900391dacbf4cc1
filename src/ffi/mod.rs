#![doc = include_str!("ABI.md")]
//!
//! In Rust terms: a thin skin over [`crate::job::Job`]. Each export checks its
//! pointers, parses its arguments, calls the Rust API and formats the answer,
//! all inside [`boundary::guard`] so no panic ever reaches the caller. The
//! text above is also the header's opening comment (`build.rs`).

mod boundary;
pub mod status;

use std::ffi::c_char;
use std::time::Duration;

use serde::Serialize;

use crate::cloud::Cloud;
use crate::job::{Job, Next};
use crate::limits;
use crate::options::Options;
use crate::progress::ProgressSnapshot;
use crate::result::{ItemResult, Summary};
use boundary::{free_string, guard, required, str_arg, write_string, Failure};
use status::*;

/// A batch of requests and, once started, their run. Opaque to C.
pub struct AzBatch {
    inner: Job,
}

/// Counters of a run, filled by `batch_progress`. Frozen: fields are only
/// ever added at the end, and the layout is checked by a test.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AzBatchProgress {
    /// Requests the run has taken in so far: 0 before `batch_start` or
    /// `batch_open`, then each as the run takes it (a `forEachSubscription`
    /// template counts as the requests it makes, once they are made).
    pub total: u64,
    /// Requests with a final result.
    pub completed: u64,
    /// Final results with a 2xx status.
    pub succeeded: u64,
    /// Final results that are not 2xx.
    pub failed: u64,
    /// Sends beyond each request's first.
    pub retries: u64,
    /// Requests in batches on the wire now.
    pub in_flight: u64,
    /// 429 answers seen (items and batches).
    pub throttled: u64,
    /// Batch requests sent (one by one, each request counts as one).
    pub batches: u64,
    /// Requests whose final result came from the journal of an earlier run,
    /// not sent again (counted in `completed` too).
    pub replayed: u64,
}

impl From<ProgressSnapshot> for AzBatchProgress {
    fn from(p: ProgressSnapshot) -> Self {
        AzBatchProgress {
            total: p.total,
            completed: p.completed,
            succeeded: p.succeeded,
            failed: p.failed,
            retries: p.retries,
            in_flight: p.in_flight,
            throttled: p.throttled,
            batches: p.batches,
            replayed: p.replayed,
        }
    }
}

/// What `batch_execute` hands out.
#[derive(Serialize)]
struct ExecuteOutput<'a> {
    responses: &'a [ItemResult],
    summary: &'a Summary,
}

/// What `batch_info` hands out.
#[derive(Serialize)]
struct Info {
    version: &'static str,
    limits: limits::Limits,
    clouds: Vec<CloudInfo>,
    /// Every key a request object takes, the field it fills, and whether it
    /// is one of the peers' shapes (resolved by `batch_request_json`).
    #[serde(rename = "requestKeys")]
    request_keys: Vec<crate::request::peers::RequestKey>,
    /// The Graph versions a URL can name (`v1.0/users/x`).
    #[serde(rename = "graphVersions")]
    graph_versions: &'static [&'static str],
}

#[derive(Serialize)]
struct CloudInfo {
    name: &'static str,
    arm: &'static str,
    graph: &'static str,
    login: &'static str,
    #[serde(rename = "armResource")]
    arm_resource: String,
    #[serde(rename = "graphResource")]
    graph_resource: String,
}

/// Borrows the job behind a handle.
///
/// # Safety
/// `p` is NULL or a live handle from `batch_new`.
unsafe fn handle<'a>(p: *const AzBatch) -> Result<&'a Job, Failure> {
    p.as_ref()
        .map(|b| &b.inner)
        .ok_or_else(|| Failure::new(AZBATCH_ERR_NULL_ARGUMENT, "batch is NULL"))
}

fn status_of(r: Result<(), AzBatchStatus>) -> AzBatchStatus {
    r.err().unwrap_or(AZBATCH_OK)
}

fn to_json(v: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string(v).map_err(|e| Failure::new(AZBATCH_ERR_INTERNAL, e.to_string()))
}

/// Creates a batch from `options_json` (borrowed), e.g.
/// `{"api":"arm","endpoint":"https://management.azure.com","token":"...",
/// "batchSize":20,"concurrency":8,"maxAttempts":6,"followNextLink":false,
/// "timeoutSeconds":3600}`. `api` is required; unknown keys are an error.
///
/// On `AZBATCH_OK` `*batch_out` gets a handle to free with `batch_free`; on
/// failure the reason goes to `*error_out` (free with `batch_string_free`).
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `batch_out` is NULL or
/// valid for one pointer write; `error_out` is NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_new(
    options_json: *const c_char,
    batch_out: *mut *mut AzBatch,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_new", error_out, || {
        crate::log::init_from_env();
        required(batch_out, "batch_out")?;
        let text = str_arg(options_json, "options_json")?;
        let options = Options::from_json(text)?;
        *batch_out = Box::into_raw(Box::new(AzBatch {
            inner: Job::new(options),
        }));
        Ok(())
    }))
}

/// Adds one request, `request_json` (borrowed):
/// `{"id" or "name", "method" or "httpMethod", "url", "headers", "body" or
/// "content", "bodyEncoding", "dependsOn"}`. `url` is a path
/// (`/subscriptions/...`) or an absolute URL on the endpoint's host. Ids must be
/// unique; a request without one gets its index as id.
///
/// Returns `AZBATCH_OK`; `AZBATCH_FULL` on a batch opened with `batch_open`
/// whose input is full (nothing added: take results, then add again); or an
/// error with a message naming the request and the field in `*error_out`
/// (free with `batch_string_free`).
///
/// # Safety
/// `batch` is NULL or a live handle; `request_json` is NULL or a NUL-terminated
/// string; `error_out` is NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_add(
    batch: *mut AzBatch,
    request_json: *const c_char,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_add", error_out, || {
        let b = handle(batch)?;
        let text = str_arg(request_json, "request_json")?;
        b.add_json(text)?;
        Ok(())
    }))
}

/// Starts the batch in the background; take results with `batch_next`.
///
/// # Safety
/// `batch` is NULL or a live handle; `error_out` is NULL or valid for one
/// pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_start(
    batch: *mut AzBatch,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_start", error_out, || {
        Ok(handle(batch)?.start()?)
    }))
}

/// Starts the batch with its input open: `batch_add` goes on while results are
/// taken with `batch_next`, and answers `AZBATCH_FULL` (nothing added; the note
/// is in `*error_out`) while the run has enough to do: take results, then add
/// again. A request may name in `dependsOn` one added later. `batch_close_input`
/// says no more will come; the run ends when the rest is done.
///
/// # Safety
/// `batch` is NULL or a live handle; `error_out` is NULL or valid for one
/// pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_open(
    batch: *mut AzBatch,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard(
        "batch_open",
        error_out,
        || Ok(handle(batch)?.open()?),
    ))
}

/// Says that no more requests come to a batch opened with `batch_open`: what
/// waits for an id never added fails with `FailedDependency`, and `batch_next`
/// answers `AZBATCH_DONE` once the rest is handed out. Closing twice, or a
/// batch never opened, is fine.
///
/// # Safety
/// `batch` is NULL or a live handle; `error_out` is NULL or valid for one
/// pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_close_input(
    batch: *mut AzBatch,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_close_input", error_out, || {
        Ok(handle(batch)?.close_input()?)
    }))
}

/// Hands a running batch a fresh access token (`token`, borrowed; never logged
/// or echoed), used from its next batch request on. For batches whose options
/// gave a static `"token"` that the caller renews before it expires; a batch
/// with `"auth"` renews its own and refuses this (`AZBATCH_ERR_INVALID_VALUE`).
///
/// # Safety
/// `batch` is NULL or a live handle; `token` is NULL or a NUL-terminated
/// string; `error_out` is NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_set_token(
    batch: *const AzBatch,
    token: *const c_char,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_set_token", error_out, || {
        let b = handle(batch)?;
        let text = str_arg(token, "token")?;
        Ok(b.set_token(text)?)
    }))
}

/// Starts the batch and waits for every result. On success `*result_out` gets
/// `{"responses":[...one per request, in the order added...],
/// "summary":{"total","succeeded","failed","retries","batches","elapsedMs"}}`;
/// each response is `{"id","status","method","url","headers","body","attempts","pages","error"}`.
/// Free it with `batch_string_free`.
///
/// Memory: everything at once, since it returns everything: every request
/// until the start, every result until the end, then the text of them all
/// (100,000 small reads peaked at 374 MB for a 52 MB answer). For large runs
/// use `batch_open` (or `batch_start`) and `batch_next`, which hold only what
/// is unfinished (200,000 results through `batch_add` and `batch_next`
/// peaked at 15 MB).
///
/// # Safety
/// `batch` is NULL or a live handle; `result_out` and `error_out` are NULL or
/// valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_execute(
    batch: *mut AzBatch,
    result_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_execute", error_out, || {
        let b = handle(batch)?;
        required(result_out, "result_out")?;
        let run = b.execute()?;
        let text = to_json(&ExecuteOutput {
            responses: &run.results,
            summary: &run.summary,
        })?;
        write_string(result_out, text);
        Ok(())
    }))
}

/// Waits up to `timeout_ms` for the next finished request. Returns
/// `AZBATCH_OK` with its result in `*item_out` (free with `batch_string_free`),
/// `AZBATCH_TIMEOUT` when none finished in time, `AZBATCH_DONE` once every
/// result has been handed out, or a negative error (`AZBATCH_ERR_WRONG_STATE`
/// before `batch_start`).
///
/// # Safety
/// `batch` is NULL or a live handle; `item_out` is NULL or valid for one
/// pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_next(
    batch: *mut AzBatch,
    timeout_ms: u32,
    item_out: *mut *mut c_char,
) -> AzBatchStatus {
    let r = guard("batch_next", std::ptr::null_mut(), || {
        let b = handle(batch)?;
        required(item_out, "item_out")?;
        match b.next(Duration::from_millis(u64::from(timeout_ms)))? {
            Next::Item(item) => {
                write_string(item_out, to_json(&item)?);
                Ok(AZBATCH_OK)
            }
            Next::Timeout => Ok(AZBATCH_TIMEOUT),
            Next::Done => Ok(AZBATCH_DONE),
        }
    });
    r.unwrap_or_else(|status| status)
}

/// Copies the run's counters, all read at one moment, into `*progress_out`.
/// Safe from any thread.
///
/// # Safety
/// `batch` is NULL or a live handle; `progress_out` is NULL or valid for one
/// `AzBatchProgress` write.
#[no_mangle]
pub unsafe extern "C" fn batch_progress(
    batch: *const AzBatch,
    progress_out: *mut AzBatchProgress,
) -> AzBatchStatus {
    status_of(guard("batch_progress", std::ptr::null_mut(), || {
        let b = handle(batch)?;
        required(progress_out, "progress_out")?;
        *progress_out = b.progress().into();
        Ok(())
    }))
}

/// Cancels the batch: nothing new is sent, and every unfinished request gets a
/// result with error code `Cancelled` (still taken with `batch_next` or
/// returned by `batch_execute`). Safe from any thread; cancelling twice is fine.
///
/// # Safety
/// `batch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn batch_cancel(batch: *const AzBatch) -> AzBatchStatus {
    status_of(guard("batch_cancel", std::ptr::null_mut(), || {
        handle(batch)?.cancel();
        Ok(())
    }))
}

/// Frees a batch, cancelling any run still going and waiting for it to stop.
/// NULL is ignored.
///
/// # Safety
/// `batch` is NULL or a live handle, not used by any thread during or after
/// this call.
#[no_mangle]
pub unsafe extern "C" fn batch_free(batch: *mut AzBatch) {
    let _ = guard("batch_free", std::ptr::null_mut(), || {
        if !batch.is_null() {
            drop(Box::from_raw(batch));
        }
        Ok(())
    });
}

/// Frees a string AzBatch wrote to an out-parameter. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from AzBatch, not freed before.
#[no_mangle]
pub unsafe extern "C" fn batch_string_free(s: *mut c_char) {
    let _ = guard("batch_string_free", std::ptr::null_mut(), || {
        free_string(s);
        Ok(())
    });
}

/// What the library knows that callers should not repeat: `{"version",
/// "limits":{"armMaxBatchSize","graphMaxBatchSize","defaultBatchSize",
/// "minConcurrency","maxConcurrency","defaultConcurrency","minAttempts",
/// "maxAttempts","defaultMaxAttempts","maxTimeoutSeconds","defaultTimeoutSeconds"},
/// "clouds":[{"name","arm","graph","login","armResource","graphResource"}],
/// "requestKeys":[{"key","field","peer"}],"graphVersions":["v1.0","beta"]}`
/// in `*info_out` (free with `batch_string_free`).
///
/// # Safety
/// `info_out` is NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_info(info_out: *mut *mut c_char) -> AzBatchStatus {
    status_of(guard("batch_info", std::ptr::null_mut(), || {
        required(info_out, "info_out")?;
        write_string(info_out, to_json(&info())?);
        Ok(())
    }))
}

fn info() -> Info {
    Info {
        version: env!("CARGO_PKG_VERSION"),
        limits: limits::all(),
        clouds: Cloud::ALL
            .iter()
            .map(|&c| CloudInfo {
                name: c.name(),
                arm: c.arm(),
                graph: c.graph(),
                login: c.login(),
                arm_resource: c.resource(crate::dialect::Api::Arm),
                graph_resource: c.resource(crate::dialect::Api::Graph),
            })
            .collect(),
        request_keys: crate::request::peers::request_keys(),
        graph_versions: &crate::dialect::graph::VERSIONS,
    }
}

/// Which API a request URL belongs to, as the library reads it (Graph's
/// top-level resources, ARM's roots, an `api-version` in the query): writes
/// "arm", "graph", or "" when it could be either to `*api_out` (free with
/// `batch_string_free`). What the PowerShell module infers `-Api` from.
///
/// # Safety
/// `url` is NULL or a NUL-terminated string; `api_out` is NULL or valid for
/// one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_url_api(
    url: *const c_char,
    api_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_url_api", std::ptr::null_mut(), || {
        let url = str_arg(url, "url")?;
        required(api_out, "api_out")?;
        let api = crate::dialect::Api::of_url(url).map_or("", |a| a.name());
        write_string(api_out, api.to_string());
        Ok(())
    }))
}

/// A request in the library's own fields: the shapes of Invoke-AzRestMethod
/// (`Path`, `Payload`, the path by parts) and Invoke-MgGraphRequest (`Uri`,
/// `ContentType`), with keys in any case, become `url`, `method`, `body`,
/// `headers`... as `batch_add` takes them. Writes that JSON object to
/// `*json_out` (free with `batch_string_free`); on failure, the reason, naming
/// the request (as `request[index]`) and the field, to `*error_out`.
///
/// # Safety
/// `request_json` is NULL or a NUL-terminated string; `json_out` and
/// `error_out` are NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_request_json(
    request_json: *const c_char,
    index: u64,
    json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> AzBatchStatus {
    status_of(guard("batch_request_json", error_out, || {
        let text = str_arg(request_json, "request_json")?;
        required(json_out, "json_out")?;
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let spec = crate::request::RequestSpec::from_json(text, index)?.canonical(index)?;
        write_string(json_out, spec.to_json().to_string());
        Ok(())
    }))
}

/// The library version, e.g. "0.1.0" (same as `AZBATCH_VERSION`). Static: do
/// not free.
#[no_mangle]
pub extern "C" fn batch_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn progress_layout_is_frozen() {
        assert_eq!(
            (size_of::<AzBatchProgress>(), align_of::<AzBatchProgress>()),
            (72, 8)
        );
        let offsets = [
            offset_of!(AzBatchProgress, total),
            offset_of!(AzBatchProgress, completed),
            offset_of!(AzBatchProgress, succeeded),
            offset_of!(AzBatchProgress, failed),
            offset_of!(AzBatchProgress, retries),
            offset_of!(AzBatchProgress, in_flight),
            offset_of!(AzBatchProgress, throttled),
            offset_of!(AzBatchProgress, batches),
            offset_of!(AzBatchProgress, replayed),
        ];
        assert_eq!(offsets, [0, 8, 16, 24, 32, 40, 48, 56, 64]);
    }

    #[test]
    fn progress_converts_field_by_field() {
        let s = ProgressSnapshot {
            total: 1,
            completed: 2,
            succeeded: 3,
            failed: 4,
            retries: 5,
            in_flight: 6,
            throttled: 7,
            batches: 8,
            replayed: 9,
        };
        let p = AzBatchProgress::from(s);
        let got = [
            p.total,
            p.completed,
            p.succeeded,
            p.failed,
            p.retries,
            p.in_flight,
            p.throttled,
            p.batches,
            p.replayed,
        ];
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn info_names_the_limits_and_clouds() {
        let v = serde_json::to_value(info()).unwrap();
        assert_eq!(v["limits"]["armMaxBatchSize"], limits::ARM_MAX_BATCH);
        assert_eq!(v["limits"]["maxConcurrency"], limits::CONCURRENCY.1);
        assert_eq!(v["clouds"][1]["name"], "AzureUSGovernment");
        assert_eq!(
            v["clouds"][1]["graphResource"],
            "https://graph.microsoft.us"
        );
        assert_eq!(
            v["clouds"][0]["armResource"],
            "https://management.azure.com/"
        );
    }
}
