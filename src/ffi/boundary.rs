//! The one boundary every export runs inside: panics are caught and become
//! a status, pointers are checked, strings cross as owned UTF-8. All raw
//! pointer work of the crate lives in this module and its parent.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::*;

/// An export's failure: a status and, for `error_out`, a message.
pub(crate) struct Failure {
    pub status: AzBatchStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: AzBatchStatus, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Failure {
        Failure {
            status: of(&e),
            message: e.to_string(),
        }
    }
}

/// Runs `body`, turning a panic into `AZBATCH_ERR_PANIC`, and writes the
/// message of any failure to `error_out` (when it is not NULL); on success
/// `*error_out` is cleared to NULL, so a caller never reads a stale message.
pub(crate) fn guard<T>(
    name: &str,
    error_out: *mut *mut c_char,
    body: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, AzBatchStatus> {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::new(
            AZBATCH_ERR_PANIC,
            format!("internal error: {name} panicked: {what}"),
        ))
    });
    if outcome.is_ok() && !error_out.is_null() {
        // SAFETY: the caller passes NULL or a pointer valid for one write.
        unsafe { *error_out = std::ptr::null_mut() };
    }
    outcome.map_err(|f| {
        // Writing the message must not panic either: it only allocates.
        unsafe { write_string(error_out, f.message) };
        f.status
    })
}

/// Borrows a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(
            AZBATCH_ERR_NULL_ARGUMENT,
            format!("{what} is NULL"),
        ));
    }
    CStr::from_ptr(p).to_str().map_err(|e| {
        Failure::new(
            AZBATCH_ERR_INVALID_UTF8,
            format!("{what} is not UTF-8: {e}"),
        )
    })
}

/// Checks a required out-parameter before any work is done, so that a NULL
/// never costs a result.
pub(crate) fn required<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            AZBATCH_ERR_NULL_ARGUMENT,
            format!("{what} is NULL"),
        ));
    }
    Ok(())
}

/// Hands `s` to C: writes a new string to `*out` when `out` is not NULL. The
/// caller frees it with `batch_string_free`.
///
/// # Safety
/// `out` is NULL or valid for one pointer write.
pub(crate) unsafe fn write_string(out: *mut *mut c_char, s: String) {
    if out.is_null() {
        return;
    }
    // JSON and our messages have no NUL; a caller's text could, so keep the rest.
    let c = CString::new(s).unwrap_or_else(|e| {
        let cleaned: Vec<u8> = e
            .into_vec()
            .into_iter()
            .map(|b| if b == 0 { b'?' } else { b })
            .collect();
        CString::new(cleaned).expect("no NUL left")
    });
    *out = c.into_raw();
}

/// Takes back a string made by [`write_string`].
///
/// # Safety
/// `s` is NULL or came from `write_string` and was not freed yet.
pub(crate) unsafe fn free_string(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
}
