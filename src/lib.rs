//! AzBatch: send any number of Azure Resource Manager and Microsoft Graph
//! requests through the services' batch endpoints and get exactly one final
//! result for each of them.
//!
//! Data flows one way through the modules:
//! [`request`] (typed or JSON input, checked; its [`dependencies`] graph)
//! → [`plan`] (which ready requests travel together) → [`engine`] (send, poll,
//! ask the [`decision`] table what each outcome means, retry or finish)
//! → [`result`] (one per request). [`job`] is the Rust API's whole run and the
//! one driver of it; the C ABI in [`ffi`] is a thin skin over it. Beside them:
//! [`dialect`] (each API's rules in one place: envelope, URLs, throttle
//! scopes and headers, batch limits), [`transport`] (HTTP), [`auth`]
//! (tokens), [`clock`] (the one wall clock), [`endpoint`], [`cloud`] and
//! [`limits`] (the facts every layer shares), [`fanout`] (one request in
//! every subscription).

pub mod auth;
pub mod clock;
pub mod cloud;
pub mod decision;
pub mod dependencies;
pub mod dialect;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod fanout;
pub mod ffi;
pub mod job;
pub mod journal;
pub mod limiter;
pub mod limits;
pub mod log;
pub mod options;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod reference;
pub mod request;
pub mod result;
pub mod retry;
pub mod secret;
pub mod transport;

pub use dialect::Api;
pub use error::Error;
pub use job::{Execution, Job, Next};
pub use options::{Options, OptionsSpec};
pub use progress::{Progress, ProgressSnapshot};
pub use request::{Request, RequestSpec};
pub use result::{ErrorInfo, ItemResult, Summary};

/// The crate version; `batch_version()` and the C header carry the same string.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
