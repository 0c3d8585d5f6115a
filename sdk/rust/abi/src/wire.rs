//! The wire form of `flat-transform`: index entries as runs of integers.

/// u32s per input record: key span, value span, first header, header
/// count, topic index, partition.
pub const RECORD: usize = 8;
/// s64s per input record: timestamp, timestamp type, offset.
pub const POSITION: usize = 3;
/// u32s per header: name span, value span.
pub const HEADER: usize = 4;
/// u32s per output: source, key span, value span, first header, header
/// count, topic index (or `NO_TOPIC`).
pub const OUTPUT: usize = 8;
/// An output's topic when it goes to the pipeline's output topic.
pub const NO_TOPIC: u32 = u32::MAX;
/// An output's timestamp when it keeps its input's.
pub const KEEP_TIMESTAMP: i64 = i64::MIN;
/// `len` of a span that stands for an absent value (null key, tombstone).
pub const ABSENT: u32 = u32::MAX;
/// Bit 31 of an output span's start: the bytes are in the input's data.
/// Input data therefore stays below 2 GiB.
pub const INPUT_SPAN: u32 = 1 << 31;

/// `list` as entries of `N` integers, or an error if it does not divide.
pub(crate) fn entries<T, const N: usize>(
    list: &[T],
) -> Result<std::slice::ChunksExact<'_, T>, crate::LayoutError> {
    if !list.len().is_multiple_of(N) {
        return Err(crate::LayoutError::IndexLength);
    }
    Ok(list.chunks_exact(N))
}

/// `collect` for a fallible iterator of known length: the vector is sized
/// once (collecting into `Result` loses the length and grows it by doubling).
pub(crate) trait CollectExact<T>:
    ExactSizeIterator<Item = Result<T, crate::LayoutError>> + Sized
{
    fn collect_exact(self) -> Result<Vec<T>, crate::LayoutError> {
        let mut out = Vec::with_capacity(self.len());
        for item in self {
            out.push(item?);
        }
        Ok(out)
    }
}

impl<T, I: ExactSizeIterator<Item = Result<T, crate::LayoutError>>> CollectExact<T> for I {}
