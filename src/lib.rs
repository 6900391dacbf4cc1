//! AzBatch: send any number of Azure Resource Manager and Microsoft Graph
//! requests through the services' batch endpoints and get exactly one final
//! result for each of them.
//!
//! Data flows one way through the modules:
//! [`request`] (typed or JSON input, checked; its `dependencies` graph)
//! → [`plan`] (which ready requests travel together) → `engine` (send, poll,
//! ask the `decision` table what each outcome means, retry or finish)
//! → [`result`] (one per request). [`Job`] is the Rust API's whole run and the
//! one driver of it; the C ABI in [`ffi`] is a thin skin over it. Beside them:
//! [`dialect`] (each API's rules in one place: envelope, URLs, throttle
//! scopes and headers, batch limits), [`transport`] (HTTP), [`auth`]
//! (tokens), `clock` (the one wall clock), [`endpoint`], [`cloud`] and
//! [`limits`] (the facts every layer shares), [`fanout`] (one request in
//! every subscription). The public face is what callers use: [`Job`],
//! [`Options`], [`RequestSpec`], [`ItemResult`], [`Error`], and the facts
//! the CLI, the emulator and the tests read; the engine and its pacing
//! (`engine`, `limiter`, `decision`, `queue`) are the crate's own.

pub mod auth;
pub(crate) mod clock;
pub mod cloud;
pub(crate) mod decision;
pub(crate) mod dependencies;
pub mod dialect;
pub mod endpoint;
pub(crate) mod engine;
pub(crate) mod error;
pub mod fanout;
pub mod ffi;
pub(crate) mod job;
pub mod journal;
pub(crate) mod limiter;
pub mod limits;
pub mod log;
pub mod options;
pub mod plan;
pub(crate) mod progress;
pub(crate) mod queue;
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
