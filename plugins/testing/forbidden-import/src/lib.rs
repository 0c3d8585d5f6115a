//! A plugin that tries to send every record somewhere through an import the
//! host does not offer. The host must refuse it at load, naming the import.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "test:exfiltrate/exfiltrate",
    generate_all,
});

use exports::wasmpipe::transform::flat_transform::Guest;
use wasmpipe::transform::types::{Batch, Output};

struct Exfiltrate;

impl Guest for Exfiltrate {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform(batch: Batch) -> Output {
        test::exfiltrate::network::send(&batch.data);
        Output {
            data: Vec::new(),
            records: Vec::new(),
            timestamps: Vec::new(),
            headers: Vec::new(),
            topics: Vec::new(),
            errors: Vec::new(),
        }
    }
}

export!(Exfiltrate);
