//! The error type for everything a caller can get wrong before a run starts.

/// An error raised while building or driving a batch: bad options, a bad request,
/// or a call made in the wrong state. Its text says what is wrong and where; it
/// never contains a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Options or a request are not JSON at all.
    #[error("{0}")]
    InvalidJson(String),
    /// The options could not be parsed or hold a value out of range.
    #[error("options: {0}")]
    InvalidOptions(String),
    /// A request could not be parsed or was refused.
    #[error("{0}")]
    InvalidRequest(String),
    /// The call does not fit the batch's state (for example `add` after `start`).
    #[error("wrong state: {0}")]
    WrongState(String),
    /// The batch was cancelled before the call.
    #[error("the batch was cancelled")]
    Cancelled,
    /// A running job's open input is full: take results, then add again.
    /// Nothing was added.
    #[error("the run's input is full: take results, then add the request again")]
    Full,
    /// Something failed inside AzBatch itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Sorts a serde error: broken JSON text, or JSON with a bad value.
    pub(crate) fn from_json(
        e: serde_json::Error,
        what: impl FnOnce(String) -> Error,
        at: &str,
    ) -> Error {
        if e.is_syntax() || e.is_eof() {
            Error::InvalidJson(format!("{at}: not valid JSON: {e}"))
        } else {
            what(e.to_string())
        }
    }
}
