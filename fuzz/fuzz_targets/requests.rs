//! Requests as the C ABI and the CLI take them, one JSON object per line,
//! against both APIs: each is added or refused with an error, never a panic.
#![no_main]
use azbatch::request::RequestList;
use azbatch::{Api, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for api in [Api::Arm, Api::Graph] {
        let o = Options::new(api);
        let mut list = RequestList::default();
        for line in text.lines() {
            if let Ok(r) = list.add_json(line, &o) {
                let _ = (r.wire_size(), azbatch::journal::digest(r));
            }
        }
        let _ = list.check_dependencies();
    }
});
