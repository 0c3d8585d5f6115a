//! A guest that misbehaves on purpose, so the host's containment is tested
//! against real wasm. Records whose value equals `trigger` (default
//! `poison`) misbehave by `mode`; every other record passes through.
//!
//! Modes: `loop`, `memory` (allocates until the limit), `recurse` (stack
//! overflow), `panic`, `huge` (emits one output of `huge_bytes`), `error`
//! (returns an error), `twice` (every record is emitted twice), `log` (logs and prints, then passes through),
//! `sleep` (sleeps an hour through WASI, as `std::thread::sleep` does),
//! `long-error` (returns an error of `huge_bytes`), `route` (emits the
//! record to the topic in config `topic`), `panic-init`, `error-init`,
//! `sleep-init`.

use std::hint::black_box;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

pub struct Misbehave {
    mode: String,
    trigger: Vec<u8>,
    topic: String,
    huge_bytes: usize,
}

fn recurse(depth: u64, pad: [u8; 256]) -> u64 {
    black_box(&pad);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1, pad) + pad[(depth % 256) as usize] as u64
}

impl Transform for Misbehave {
    fn init(config: &Config) -> Result<Self, Error> {
        let mode = config.require("mode")?.to_owned();
        match mode.as_str() {
            "panic-init" => panic!("misbehave: panic in init, as asked"),
            "error-init" => return Err(Error::msg("misbehave: init refused, as asked")),
            "sleep-init" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            _ => {}
        }
        Ok(Misbehave {
            mode,
            trigger: config
                .get("trigger")
                .unwrap_or("poison")
                .as_bytes()
                .to_vec(),
            topic: config.get("topic").unwrap_or_default().to_owned(),
            huge_bytes: config
                .get("huge_bytes")
                .and_then(|s| s.parse().ok())
                .unwrap_or(64 << 20),
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        if self.mode == "twice" {
            out.forward(record);
            out.forward(record);
            return Ok(());
        }
        if record.value() != Some(self.trigger.as_slice()) && self.mode != "log" {
            out.forward(record);
            return Ok(());
        }
        match self.mode.as_str() {
            "loop" => loop {
                black_box(&out);
            },
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                black_box(recurse(0, [7; 256]));
            }
            "panic" => panic!(
                "misbehave: panic in transform at offset {}",
                record.offset()
            ),
            "huge" => {
                let value = vec![b'x'; self.huge_bytes];
                out.emit(&record.to_output().value(Some(&value)));
                return Ok(());
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "long-error" => return Err(Error::msg("e".repeat(self.huge_bytes))),
            "route" => {
                out.emit(&record.to_output().topic(&self.topic));
                return Ok(());
            }
            "error" => {
                return Err(Error::msg(format!(
                    "misbehave: refused offset {}",
                    record.offset()
                )));
            }
            "log" => {
                wasmpipe_sdk::log(
                    wasmpipe_sdk::Level::Warn,
                    "misbehave saw a record",
                    &[("offset", &record.offset().to_string())],
                );
                println!("misbehave stdout line");
                eprintln!("misbehave stderr line");
            }
            other => return Err(Error::msg(format!("misbehave: unknown mode '{other}'"))),
        }
        out.forward(record);
        Ok(())
    }
}

wasmpipe_sdk::export!(Misbehave);
