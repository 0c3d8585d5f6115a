//! Text a plugin or a record chose, cut to a size the host keeps: in log
//! lines, dead-letter headers and error messages.

use std::borrow::Cow;

/// The most bytes of plugin-chosen text kept in one log field, log line,
/// error message or dead-letter header.
pub const FIELD_BYTES: usize = 4096;

/// `text` cut to [`FIELD_BYTES`] on a character boundary, marked as cut
/// with how much was left out.
pub fn capped(text: &str) -> Cow<'_, str> {
    cap(text, FIELD_BYTES)
}

/// `text` cut to at most `max` bytes (marker included) where it is longer.
pub fn cap(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    // The marker's own length depends on the number it holds: size it for
    // the whole text, which is at least the part left out.
    let marker_len = marker(text.len()).len();
    let mut end = max.saturating_sub(marker_len);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{}", &text[..end], marker(text.len() - end)))
}

fn marker(cut: usize) -> String {
    format!("… [cut: {cut} more bytes]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert!(matches!(capped("hello"), Cow::Borrowed("hello")));
        let exact = "x".repeat(FIELD_BYTES);
        assert_eq!(capped(&exact), exact);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(FIELD_BYTES);
        let cut = capped(&long);
        assert!(cut.len() <= FIELD_BYTES, "{}", cut.len());
        let kept = cut.split('…').next().unwrap();
        assert!(kept.chars().all(|c| c == 'é'));
        let left_out = long.len() - kept.len();
        assert!(
            cut.ends_with(&format!("… [cut: {left_out} more bytes]")),
            "{}",
            &cut[cut.len() - 40..]
        );
    }

    #[test]
    fn a_cap_below_the_marker_keeps_only_the_marker() {
        assert_eq!(cap("abcdef", 3), "… [cut: 6 more bytes]");
    }
}
