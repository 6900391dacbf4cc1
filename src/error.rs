//! The error type for everything a caller can get wrong before a run starts.

/// An error raised while building or driving a batch: bad options, a bad request,
/// or a call made in the wrong state. Its text says what is wrong and where; it
/// never contains a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
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
    /// Something failed inside AzBatch itself.
    #[error("internal error: {0}")]
    Internal(String),
}
