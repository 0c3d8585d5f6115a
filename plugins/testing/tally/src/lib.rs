//! A stateful guest that misbehaves on purpose, so that the host is tested
//! to drop the state writes of a record that fails. Every record adds one
//! to its key's tally (in state) and is passed through with the tally in
//! a `tally` header; a record whose value equals `trigger` (default
//! `poison`) then misbehaves by `mode`: `error`, `panic`, `loop` or
//! `memory`; or, over the host's state limits, `big-key` (a 1 MiB key),
//! `big-value` (a 2 MiB value), `flood` (512 KiB values under new keys
//! until the host refuses one), `scan-all` (one scan asking for every
//! entry). A record's key is its value when it has no key. With `spin`
//! (ms), every record first busy-waits that long: a batch then runs past
//! the host's deadline although each record alone keeps within it.

use std::hint::black_box;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform, state};

pub struct Tally {
    mode: String,
    trigger: Vec<u8>,
    spin: std::time::Duration,
}

impl Transform for Tally {
    fn init(config: &Config) -> Result<Self, Error> {
        config.only(&["mode", "trigger", "spin"])?;
        let spin = match config.get("spin") {
            Some(ms) => ms
                .parse()
                .map_err(|_| Error::msg(format!("config 'spin' = '{ms}': write a number of ms")))?,
            None => 0,
        };
        Ok(Tally {
            mode: config.get("mode").unwrap_or("error").to_owned(),
            trigger: config
                .get("trigger")
                .unwrap_or("poison")
                .as_bytes()
                .to_vec(),
            spin: std::time::Duration::from_millis(spin),
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let key = record.key().or(record.value()).unwrap_or_default();
        let tally = state::get(key)?.map_or(0, |v| state::decode_u64(&v)) + 1;
        state::put(key, tally.to_be_bytes())?;
        while started.elapsed() < self.spin {
            black_box(&out);
        }
        if record.value() == Some(self.trigger.as_slice()) {
            match self.mode.as_str() {
                "big-key" => state::put(vec![b'k'; 1 << 20], b"v")?,
                "big-value" => state::put(b"big", vec![b'v'; 2 << 20])?,
                "flood" => {
                    for n in 0u64.. {
                        state::put(n.to_be_bytes(), vec![b'v'; 512 << 10])?;
                    }
                }
                "scan-all" => {
                    let seen =
                        state::scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded).count();
                    return Err(Error::msg(format!("tally: scanned {seen} entries")));
                }
                "panic" => panic!("tally: panic after writing state, as asked"),
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
                _ => return Err(Error::msg("tally: refused after writing state, as asked")),
            }
        }
        let tally = tally.to_string();
        out.emit(&record.to_output().header("tally", Some(tally.as_bytes())));
        Ok(())
    }
}

wasmpipe_sdk::export!(Tally);
