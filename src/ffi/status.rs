//! Status codes of the C ABI. Numbers are fixed forever: a retired number is
//! never given a new meaning.

/// Success.
pub const AZBATCH_OK: i32 = 0;
/// `batch_next`: every result has been handed out.
pub const AZBATCH_DONE: i32 = 1;
/// `batch_next`: nothing finished within the timeout; call again.
pub const AZBATCH_TIMEOUT: i32 = 2;
/// A required pointer argument was NULL.
pub const AZBATCH_ERR_NULL_ARGUMENT: i32 = -1;
/// A string argument was not UTF-8.
pub const AZBATCH_ERR_INVALID_UTF8: i32 = -2;
/// A JSON argument was not valid JSON.
pub const AZBATCH_ERR_INVALID_JSON: i32 = -3;
/// A JSON argument was JSON but held a bad value (unknown key, wrong type,
/// out of range, refused URL, duplicate id, ...). `error_out` says which.
pub const AZBATCH_ERR_INVALID_VALUE: i32 = -4;
/// The call does not fit the batch's state (add after start, next before start, ...).
pub const AZBATCH_ERR_WRONG_STATE: i32 = -5;
/// The batch was cancelled before this call.
pub const AZBATCH_ERR_CANCELLED: i32 = -6;
/// AzBatch panicked; the panic was caught at the boundary. The batch should be freed.
pub const AZBATCH_ERR_PANIC: i32 = -7;
/// Any other failure inside AzBatch (for example the runtime could not start).
pub const AZBATCH_ERR_INTERNAL: i32 = -8;

use crate::error::Error;

/// The status for a Rust API error.
pub(crate) fn of(e: &Error) -> i32 {
    match e {
        Error::InvalidJson(_) => AZBATCH_ERR_INVALID_JSON,
        Error::InvalidOptions(_) | Error::InvalidRequest(_) => AZBATCH_ERR_INVALID_VALUE,
        Error::WrongState(_) => AZBATCH_ERR_WRONG_STATE,
        Error::Cancelled => AZBATCH_ERR_CANCELLED,
        Error::Internal(_) => AZBATCH_ERR_INTERNAL,
    }
}
