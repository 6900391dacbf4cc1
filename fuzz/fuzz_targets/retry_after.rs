//! Retry-After and its cousins: any header values give a wait within the cap
//! or none, never a panic.
#![no_main]
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    let get = |name: &str| match name {
        "retry-after" => a.map(str::to_string),
        "retry-after-ms" => b.map(str::to_string),
        "x-ms-retry-after-ms" => c.map(str::to_string),
        _ => None,
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(w) = azbatch::retry::retry_after(get, now) {
        assert!(w <= azbatch::limits::MAX_RETRY_AFTER);
    }
});
