//! Reads the expiry of a JWT access token, without verifying it: only to know
//! when a caller's static token stops working.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// The `exp` claim of a JWT, if `token` is one.
pub fn expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    // A huge or odd `exp` is no expiry we can act on, never a panic.
    let exp = Duration::try_from_secs_f64(exp)
        .ok()
        .filter(|d| !d.is_zero())?;
    UNIX_EPOCH.checked_add(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_only_from_jwts() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"aud":"x","exp":1700000000}"#);
        let t = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(
            expiry(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(expiry("opaque-token"), None);
        // An exp no clock can hold is no expiry, never a panic.
        for exp in [
            "1e300",
            "1e19",
            "-1",
            "0",
            "18446744073709551616",
            "\"soon\"",
        ] {
            let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!(r#"{{"exp":{exp}}}"#));
            assert_eq!(expiry(&format!("h.{payload}.s")), None, "exp {exp}");
        }
        assert_eq!(expiry("a.!!!.c"), None);
    }
}
