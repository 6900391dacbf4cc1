//! A journal file as a crash or a disk might leave it: read or refused with a
//! reason, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = azbatch::journal::check(bytes);
});
