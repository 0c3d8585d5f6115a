//! The headers of a dead letter: the failed record's own, then the host's
//! `wasmpipe.*` headers saying why. A record's own header named like one
//! of the host's is kept under [`ORIGINAL_PREFIX`], so a record cannot
//! pass for a dead letter or hide why it failed.

use std::borrow::Cow;

/// What every header the host writes on a dead letter starts with.
pub const HOST_PREFIX: &str = "wasmpipe.";

/// What a failed record's own `wasmpipe.*` header (the prefix matched in
/// any case) is renamed with: `wasmpipe.error.kind` on the input arrives
/// as `wasmpipe.original.wasmpipe.error.kind`.
pub const ORIGINAL_PREFIX: &str = "wasmpipe.original.";

/// A failed record's own header name as its dead letter carries it (names
/// are bytes, as Kafka carries them): renamed under [`ORIGINAL_PREFIX`]
/// when it starts with [`HOST_PREFIX`], in any case.
pub fn kept_name(name: &[u8]) -> Cow<'_, [u8]> {
    let host = name
        .get(..HOST_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(HOST_PREFIX.as_bytes()));
    if host {
        Cow::Owned([ORIGINAL_PREFIX.as_bytes(), name].concat())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_own_wasmpipe_headers_cannot_pass_for_the_hosts() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"trace-id", b"trace-id"),
            (
                b"wasmpipe.error.kind",
                b"wasmpipe.original.wasmpipe.error.kind",
            ),
            (b"WASMPIPE.plugin", b"wasmpipe.original.WASMPIPE.plugin"),
            (
                b"wasmpipe.original.x",
                b"wasmpipe.original.wasmpipe.original.x",
            ),
            (b"wasmpipe", b"wasmpipe"),
            (b"\xffwasmpipe.", b"\xffwasmpipe."),
        ];
        for (name, kept) in cases {
            assert_eq!(kept_name(name).as_ref(), kept, "{name:?}");
            // Never one of the host's own names.
            let k = kept_name(name);
            assert!(
                !k.starts_with(HOST_PREFIX.as_bytes()) || k.starts_with(ORIGINAL_PREFIX.as_bytes())
            );
        }
    }
}
