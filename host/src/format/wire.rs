//! The schema registry's wire format, as Confluent's serializers write it
//! and every compatible registry's clients read it: a zero magic byte, the
//! schema id as a big-endian u32, for Protobuf the indexes of the message
//! in its file, then the encoded payload.

use super::FormatError;

const MAGIC: u8 = 0;

/// A framed record's parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed<'a> {
    pub id: u32,
    /// The path of the message in its `.proto` file (Protobuf only): `[0]`
    /// is the file's first message, `[1, 0]` the first nested in the second.
    pub indexes: Vec<i32>,
    pub payload: &'a [u8],
}

/// Reads the frame of `bytes`; `protobuf` says whether message indexes
/// follow the id.
pub fn unframe(bytes: &[u8], protobuf: bool) -> Result<Framed<'_>, FormatError> {
    let Some((&magic, rest)) = bytes.split_first() else {
        return Err(FormatError::malformed(
            "the record is empty: a schema-registry record starts with a magic byte and a schema id",
        ));
    };
    if magic != MAGIC {
        return Err(FormatError::malformed(format!(
            "the record does not start with the schema registry's magic byte 0 (it starts with \
             0x{magic:02x}): it was not written by a schema-registry serializer; read this topic \
             with format json or raw"
        )));
    }
    let Some((id, mut payload)) = rest.split_first_chunk::<4>() else {
        return Err(FormatError::malformed(format!(
            "the record is {} bytes, too short for the 4-byte schema id after the magic byte",
            bytes.len()
        )));
    };
    let id = u32::from_be_bytes(*id);
    let mut indexes = Vec::new();
    if protobuf {
        let count = read_varint(&mut payload)?;
        if count == 0 {
            indexes.push(0);
        } else {
            if count < 0 || count as usize > payload.len() {
                return Err(FormatError::malformed(format!(
                    "the record's message-index count {count} is not possible in {} bytes",
                    payload.len()
                )));
            }
            for _ in 0..count {
                indexes.push(read_varint(&mut payload)?);
            }
        }
    }
    Ok(Framed {
        id,
        indexes,
        payload,
    })
}

/// Appends the frame of a record of schema `id` (and for Protobuf, of the
/// message at `indexes`) to `out`; the payload follows.
pub fn frame(id: u32, indexes: Option<&[i32]>, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    match indexes {
        None => {}
        // The common case, the file's first message, is a single 0.
        Some([0]) | Some([]) => write_varint(0, out),
        Some(path) => {
            write_varint(path.len() as i32, out);
            for &i in path {
                write_varint(i, out);
            }
        }
    }
}

/// A zig-zag varint, as Confluent's Protobuf serializer writes the indexes.
fn read_varint(bytes: &mut &[u8]) -> Result<i32, FormatError> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let Some((&b, rest)) = bytes.split_first() else {
            return Err(FormatError::malformed(
                "the record ends inside its Protobuf message indexes",
            ));
        };
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let v = value as u32;
            return Ok(((v >> 1) as i32) ^ -((v & 1) as i32));
        }
    }
    Err(FormatError::malformed(
        "a Protobuf message index of the record is longer than 5 bytes",
    ))
}

fn write_varint(value: i32, out: &mut Vec<u8>) {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_with_their_message_indexes() {
        for indexes in [vec![0], vec![1], vec![2, 0, 5], vec![300, 70000]] {
            let mut out = Vec::new();
            frame(7, Some(&indexes), &mut out);
            out.extend_from_slice(b"payload");
            let f = unframe(&out, true).unwrap();
            assert_eq!(
                (f.id, &f.indexes[..], f.payload),
                (7, &indexes[..], &b"payload"[..])
            );
        }
        // The first message is written as a single zero, as Confluent does.
        let mut out = Vec::new();
        frame(1, Some(&[0]), &mut out);
        assert_eq!(out, [0, 0, 0, 0, 1, 0]);
        // Confluent's frame for indexes [1]: count 1 (zig-zag 2), index 1 (2).
        let f = unframe(&[0, 0, 0, 0, 9, 2, 2, 0xAA], true).unwrap();
        assert_eq!((f.id, f.indexes, f.payload), (9, vec![1], &[0xAA][..]));
    }

    #[test]
    fn records_without_the_frame_are_malformed_with_the_cause() {
        let e = unframe(b"{\"a\":1}", false).unwrap_err();
        assert!(
            e.to_string().contains("magic byte 0 (it starts with 0x7b)"),
            "{e}"
        );
        assert_eq!(e.reason(), "malformed");
        assert!(
            unframe(&[], false)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            unframe(&[0, 0, 1], false)
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
        let e = unframe(&[0, 0, 0, 0, 1, 0x80], true).unwrap_err();
        assert!(e.to_string().contains("ends inside"), "{e}");
        let e = unframe(&[0, 0, 0, 0, 1, 40, 2], true).unwrap_err();
        assert!(e.to_string().contains("count 20"), "{e}");
    }
}
