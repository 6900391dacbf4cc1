//! Logging: the library logs through `tracing` (batches sent and answered,
//! retries and why, scopes paused, pages followed, tokens fetched: never a
//! token or a secret) and is silent unless asked. The command line asks with
//! `-v`/`-vv`; the C ABI and the PowerShell module with the `AZBATCH_LOG`
//! environment variable (a level such as `info` or `debug`, or any `tracing`
//! filter such as `azbatch=debug`), and `AZBATCH_LOG_FORMAT=json` for JSON
//! lines. Logs go to standard error.

use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Sends the library's logs at `filter` to standard error, as text or JSON
/// lines; a no-op when a logger is already installed (by this or the host).
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // An error means a logger is already there: it is theirs to keep.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// [`init`] from `AZBATCH_LOG` and `AZBATCH_LOG_FORMAT`, once per process;
/// nothing when `AZBATCH_LOG` is not set.
pub fn init_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(filter) = std::env::var("AZBATCH_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            let json =
                std::env::var("AZBATCH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
            init(&filter, json);
        }
    });
}
