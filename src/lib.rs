//! AzBatch: send any number of Azure Resource Manager (and, later, Microsoft Graph)
//! requests through the service's batch endpoint and get exactly one final result
//! for each of them.
//!
//! Data flows one way through the modules:
//! [`request`] (validated input) → [`plan`] (cut into batches) → [`engine`] (send,
//! poll, classify with [`retry`], retry or finish) → [`result`] (one per request).
//! [`wire`] holds each API's batch envelope, [`transport`] the HTTP client,
//! [`batch`] a blocking facade that the C ABI in [`ffi`] wraps.

pub mod api;
pub mod auth;
pub mod clock;
pub mod cloud;
pub mod decision;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod fanout;
pub mod ffi;
pub mod graph;
pub mod job;
pub mod limits;
pub mod options;
pub mod plan;
pub mod progress;
pub mod reference;
pub mod request;
pub mod result;
pub mod retry;
pub mod secret;
pub mod transport;
pub mod wire;

pub use api::Api;
pub use error::Error;
pub use job::{Execution, Job, Next};
pub use options::{Options, OptionsSpec};
pub use progress::{Progress, ProgressSnapshot};
pub use request::{Request, RequestSpec};
pub use result::{ErrorInfo, ItemResult, Summary};

/// The crate version; `batch_version()` and the C header carry the same string.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
