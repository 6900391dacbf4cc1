//! Status codes of the C ABI. Numbers are fixed forever: a retired number is
//! never given a new meaning.

use crate::error::Error;

/// What a C ABI call came to. Zero and positive values are not errors.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzBatchStatus {
    /// Success.
    AZBATCH_OK = 0,
    /// `batch_next`: every result has been handed out.
    AZBATCH_DONE = 1,
    /// `batch_next`: nothing finished within the timeout; call again.
    AZBATCH_TIMEOUT = 2,
    /// `batch_add` on a batch opened with `batch_open`: its input is full, and
    /// nothing was added; take results with `batch_next`, then add it again.
    AZBATCH_FULL = 3,
    /// A required pointer argument was NULL.
    AZBATCH_ERR_NULL_ARGUMENT = -1,
    /// A string argument was not UTF-8.
    AZBATCH_ERR_INVALID_UTF8 = -2,
    /// A JSON argument was not valid JSON.
    AZBATCH_ERR_INVALID_JSON = -3,
    /// A JSON argument was JSON but held a bad value (unknown key, wrong type,
    /// out of range, refused URL, duplicate id, ...). `error_out` says which.
    AZBATCH_ERR_INVALID_VALUE = -4,
    /// The call does not fit the batch's state (add after start, next before start, ...).
    AZBATCH_ERR_WRONG_STATE = -5,
    /// The batch was cancelled before this call.
    AZBATCH_ERR_CANCELLED = -6,
    /// AzBatch panicked; the panic was caught at the boundary. The batch should be freed.
    AZBATCH_ERR_PANIC = -7,
    /// Any other failure inside AzBatch (for example the runtime could not start).
    AZBATCH_ERR_INTERNAL = -8,
}

pub use AzBatchStatus::*;

/// The status for a Rust API error.
pub(crate) fn of(e: &Error) -> AzBatchStatus {
    match e {
        Error::InvalidJson(_) => AZBATCH_ERR_INVALID_JSON,
        Error::InvalidOptions(_) | Error::InvalidRequest(_) => AZBATCH_ERR_INVALID_VALUE,
        Error::WrongState(_) => AZBATCH_ERR_WRONG_STATE,
        Error::Cancelled => AZBATCH_ERR_CANCELLED,
        Error::Full => AZBATCH_FULL,
        Error::Internal(_) => AZBATCH_ERR_INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_fixed() {
        let all = [
            (AZBATCH_OK, 0),
            (AZBATCH_DONE, 1),
            (AZBATCH_TIMEOUT, 2),
            (AZBATCH_FULL, 3),
            (AZBATCH_ERR_NULL_ARGUMENT, -1),
            (AZBATCH_ERR_INVALID_UTF8, -2),
            (AZBATCH_ERR_INVALID_JSON, -3),
            (AZBATCH_ERR_INVALID_VALUE, -4),
            (AZBATCH_ERR_WRONG_STATE, -5),
            (AZBATCH_ERR_CANCELLED, -6),
            (AZBATCH_ERR_PANIC, -7),
            (AZBATCH_ERR_INTERNAL, -8),
        ];
        for (s, n) in all {
            assert_eq!(s as i32, n, "{s:?}");
        }
        assert_eq!(std::mem::size_of::<AzBatchStatus>(), 4);
    }
}
