//! The options JSON of the C ABI: any text gets options or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(o) = azbatch::Options::from_json(text) {
        let _ = (o.batch_url(), o.url_root(), o.resource());
    }
});
