//! The C ABI: a thin skin over [`crate::Batch`]. Each export checks its
//! pointers, parses its arguments, calls the Rust API and formats the answer,
//! all inside [`boundary::guard`] so no panic ever reaches the caller.
//!
//! Ownership, for C readers (the header carries these notes):
//! - `AzBatch *` comes from `batch_new` and is released by `batch_free` only.
//! - Every `char *` AzBatch writes (`error_out`, `result_out`, `item_out`) is
//!   owned by the caller and freed with `batch_string_free` only.
//! - Every `const char *` argument is borrowed for the call only.
//! - Out-parameters are written only on success; on failure only `error_out`.
//!   Any out-parameter may be NULL when the caller does not want it.
//! - `batch_progress` and `batch_cancel` may be called from any thread while
//!   another thread waits in `batch_next` or `batch_execute`; nothing else may
//!   run concurrently on one batch, and nothing may run during `batch_free`.

mod boundary;
pub mod status;

use std::ffi::c_char;
use std::time::Duration;

use serde::Serialize;

use crate::result::{ItemResult, Summary};

use crate::batch::{Batch, Next};
use crate::options::Options;
use boundary::{free_string, guard, str_arg, write_string, Failure};
use status::*;

/// A batch of requests and, once started, their run. Opaque to C.
pub struct AzBatch {
    inner: Batch,
}

/// Counters of a run, filled by `batch_progress`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct AzBatchProgress {
    /// Requests added.
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
    /// Batch requests sent.
    pub batches: u64,
}

/// What `batch_execute` hands out.
#[derive(Serialize)]
struct ExecuteOutput<'a> {
    responses: &'a [ItemResult],
    summary: &'a Summary,
}

/// Borrows the batch behind a handle.
///
/// # Safety
/// `p` is NULL or a live handle from `batch_new`.
unsafe fn handle<'a>(p: *const AzBatch) -> Result<&'a Batch, Failure> {
    p.as_ref()
        .map(|b| &b.inner)
        .ok_or_else(|| Failure::new(AZBATCH_ERR_NULL_ARGUMENT, "batch is NULL"))
}

fn status_of(r: Result<(), i32>) -> i32 {
    r.err().unwrap_or(AZBATCH_OK)
}

/// Creates a batch from `options_json` (borrowed), e.g.
/// `{"api":"arm","endpoint":"https://management.azure.com","token":"...",
/// "batchSize":20,"concurrency":8,"maxAttempts":6,"followNextLink":false,
/// "timeoutSeconds":3600}`. `api` is required; unknown keys are an error.
///
/// Returns a handle to free with `batch_free`, or NULL with the reason in
/// `*error_out` (free with `batch_string_free`).
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `error_out` is NULL or
/// valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_new(
    options_json: *const c_char,
    error_out: *mut *mut c_char,
) -> *mut AzBatch {
    guard("batch_new", error_out, || {
        let text = str_arg(options_json, "options_json")?;
        let options = Options::from_json(text)?;
        Ok(Box::into_raw(Box::new(AzBatch {
            inner: Batch::new(options),
        })))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// Adds one request, `request_json` (borrowed):
/// `{"id" or "name", "method" or "httpMethod", "url", "headers", "body" or "content"}`.
/// `url` is a path (`/subscriptions/...`) or an absolute URL on the endpoint's
/// host. Ids must be unique; a request without one gets its index as id.
///
/// Returns `AZBATCH_OK`, or an error with a message naming the request and the
/// field in `*error_out` (free with `batch_string_free`).
///
/// # Safety
/// `batch` is NULL or a live handle; `request_json` is NULL or a NUL-terminated
/// string; `error_out` is NULL or valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_add(
    batch: *mut AzBatch,
    request_json: *const c_char,
    error_out: *mut *mut c_char,
) -> i32 {
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
pub unsafe extern "C" fn batch_start(batch: *mut AzBatch, error_out: *mut *mut c_char) -> i32 {
    status_of(guard("batch_start", error_out, || {
        Ok(handle(batch)?.start()?)
    }))
}

/// Starts the batch and waits for every result. On success `*result_out` gets
/// `{"responses":[...one per request, in the order added...],
/// "summary":{"total","succeeded","failed","retries","batches","elapsedMs"}}`;
/// each response is `{"id","status","headers","body","attempts","pages","error"}`.
/// Free it with `batch_string_free`.
///
/// # Safety
/// `batch` is NULL or a live handle; `result_out` and `error_out` are NULL or
/// valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn batch_execute(
    batch: *mut AzBatch,
    result_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> i32 {
    let r = guard("batch_execute", error_out, || {
        let run = handle(batch)?.execute()?;
        let out = ExecuteOutput {
            responses: &run.results,
            summary: &run.summary,
        };
        serde_json::to_string(&out).map_err(|e| Failure::new(AZBATCH_ERR_INTERNAL, e.to_string()))
    });
    match r {
        Ok(text) => {
            write_string(result_out, text);
            AZBATCH_OK
        }
        Err(status) => status,
    }
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
) -> i32 {
    let r = guard("batch_next", std::ptr::null_mut(), || {
        Ok(handle(batch)?.next(Duration::from_millis(u64::from(timeout_ms)))?)
    });
    match r {
        Ok(Next::Item(item)) => {
            write_string(item_out, serde_json::to_string(&item).unwrap_or_default());
            AZBATCH_OK
        }
        Ok(Next::Timeout) => AZBATCH_TIMEOUT,
        Ok(Next::Done) => AZBATCH_DONE,
        Err(status) => status,
    }
}

/// Copies the run's counters into `*progress_out`. Safe from any thread.
///
/// # Safety
/// `batch` is NULL or a live handle; `progress_out` is NULL or valid for one
/// `AzBatchProgress` write.
#[no_mangle]
pub unsafe extern "C" fn batch_progress(
    batch: *const AzBatch,
    progress_out: *mut AzBatchProgress,
) -> i32 {
    status_of(guard("batch_progress", std::ptr::null_mut(), || {
        let p = handle(batch)?.progress();
        if progress_out.is_null() {
            return Err(Failure::new(
                AZBATCH_ERR_NULL_ARGUMENT,
                "progress_out is NULL",
            ));
        }
        *progress_out = AzBatchProgress {
            total: p.total,
            completed: p.completed,
            succeeded: p.succeeded,
            failed: p.failed,
            retries: p.retries,
            in_flight: p.in_flight,
            throttled: p.throttled,
            batches: p.batches,
        };
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
pub unsafe extern "C" fn batch_cancel(batch: *const AzBatch) -> i32 {
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

/// The library version, e.g. "0.1.0" (same as `AZBATCH_VERSION`). Static: do
/// not free.
#[no_mangle]
pub extern "C" fn batch_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
