//! A Graph batch answer as the service (or anything in between) might send it:
//! decoded into item answers or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(items) = azbatch::dialect::decode(azbatch::Api::Graph, body) {
        for i in &items {
            let _ = (
                i.header("retry-after"),
                i.header("x-ms-throttle-limit-percentage"),
            );
        }
    }
});
