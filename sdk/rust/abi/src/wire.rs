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

/// An index entry laid out as `N` integers of type `Word`.
///
/// # Safety
/// Implementors are `repr(C)` with exactly `N` fields, each of `Word`'s
/// size and alignment, so the type has no padding, its alignment is
/// `Word`'s, and every bit pattern is a value of it.
pub(crate) unsafe trait Words: Copy {
    type Word: Copy;
    const N: usize;
}

/// Entries as the run of integers they are laid out as.
pub(crate) fn as_words<T: Words>(entries: &[T]) -> &[T::Word] {
    const { assert!(size_of::<T>() == T::N * size_of::<T::Word>()) };
    const { assert!(align_of::<T>() == align_of::<T::Word>()) };
    // SAFETY: `T` is `N` words without padding, aligned as a word (the
    // trait's contract, checked above): the same memory read as words.
    unsafe { std::slice::from_raw_parts(entries.as_ptr().cast(), entries.len() * T::N) }
}

/// Entries from a run of integers (copied), or an error if `N` does not
/// divide it.
pub(crate) fn from_words<T: Words>(words: &[T::Word]) -> Result<Vec<T>, crate::LayoutError> {
    const { assert!(size_of::<T>() == T::N * size_of::<T::Word>()) };
    const { assert!(align_of::<T>() == align_of::<T::Word>()) };
    if !words.len().is_multiple_of(T::N) {
        return Err(crate::LayoutError::IndexLength);
    }
    let count = words.len() / T::N;
    let mut entries = Vec::<T>::with_capacity(count);
    // SAFETY: the vector has room for `count` entries, `count * N` words;
    // every bit pattern is a `T` (the trait's contract), and all of them
    // are written before the length is set.
    unsafe {
        std::ptr::copy_nonoverlapping(
            words.as_ptr(),
            entries.as_mut_ptr().cast::<T::Word>(),
            words.len(),
        );
        entries.set_len(count);
    }
    Ok(entries)
}
