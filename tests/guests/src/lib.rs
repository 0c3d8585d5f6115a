//! Paths of the real wasm components built from `plugins/` by this crate's
//! build script: `FLAT_*` against the flat world (every guest), `TYPED_*`
//! against the typed world (the SDK plugins).

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Every SDK plugin in both worlds: `(world, name, path)`.
pub fn sdk_plugins() -> [(&'static str, &'static str, &'static str); 20] {
    [
        ("flat", "identity", FLAT_IDENTITY),
        ("flat", "redact", FLAT_REDACT),
        ("flat", "filter", FLAT_FILTER),
        ("flat", "route", FLAT_ROUTE),
        ("flat", "reshape", FLAT_RESHAPE),
        ("flat", "misbehave", FLAT_MISBEHAVE),
        ("flat", "count", FLAT_COUNT),
        ("flat", "dedup", FLAT_DEDUP),
        ("flat", "window-sum", FLAT_WINDOW_SUM),
        ("flat", "tally", FLAT_TALLY),
        ("typed", "identity", TYPED_IDENTITY),
        ("typed", "redact", TYPED_REDACT),
        ("typed", "filter", TYPED_FILTER),
        ("typed", "route", TYPED_ROUTE),
        ("typed", "reshape", TYPED_RESHAPE),
        ("typed", "misbehave", TYPED_MISBEHAVE),
        ("typed", "count", TYPED_COUNT),
        ("typed", "dedup", TYPED_DEDUP),
        ("typed", "window-sum", TYPED_WINDOW_SUM),
        ("typed", "tally", TYPED_TALLY),
    ]
}

/// A plugin by world (`flat` or `typed`) and name.
pub fn plugin(world: &str, name: &str) -> &'static str {
    sdk_plugins()
        .into_iter()
        .find(|(w, n, _)| *w == world && *n == name)
        .map(|(_, _, p)| p)
        .unwrap_or_else(|| panic!("no test guest {name} in world {world}"))
}
