//! A bearer token that never shows itself in `Debug`, `Display` or error text.

use std::fmt;
use std::sync::Arc;

/// A secret string such as an access token. Its `Debug` output is redacted; the
/// value is only reachable through [`Secret::expose`], which two places call:
/// the transport, to build the `Authorization` header of a request the engine
/// has checked is for the configured endpoint, and the token source, to read a
/// JWT's expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is sent to its one destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_value() {
        let s = Secret::new("eyJ0eXAiOiJKV1QiLCJhbGciOi");
        let shown = format!("{s:?}");
        assert!(!shown.contains("eyJ0"), "{shown}");
        assert_eq!(s.expose(), "eyJ0eXAiOiJKV1QiLCJhbGciOi");
    }
}
