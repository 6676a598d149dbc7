//! Feeds arbitrary bytes to the desired-state loader and validator: up to four files (split
//! on NUL bytes), then renders every diagnostic. None of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner::desired::load::{Loaded, load_text};
use provisioner::desired::validate::validate;

fuzz_target!(|data: &[u8]| {
    let mut loaded = Loaded::default();
    for (i, part) in data.split(|b| *b == 0).take(4).enumerate() {
        if let Ok(text) = std::str::from_utf8(part) {
            load_text(format!("f{i}.toml").into(), text.to_string(), &mut loaded);
        }
    }
    match validate(loaded) {
        Ok(state) => {
            let _ = state.topological_order();
            let _ = state.counts_by_provider();
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
