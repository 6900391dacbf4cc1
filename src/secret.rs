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

/// Refuses a token that cannot travel in an `Authorization` header (a line
/// break or a non-ASCII character from a bad copy), naming where, never what.
pub fn check_token(token: &str) -> Result<(), String> {
    match token.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        None => Ok(()),
        Some(at) => Err(format!(
            "the token cannot be sent in an HTTP header: character {} of {} is a space, a control character or not ASCII (was it copied with a line break or quotes?)",
            token[..at].chars().count() + 1,
            token.chars().count()
        )),
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
