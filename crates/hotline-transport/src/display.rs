//! Text from elsewhere made safe to show on a terminal.
//!
//! Names, subjects, notes and details come from the peer node, from other operators, or from
//! files; none of them may steer what the duty officer sees. Control characters could write
//! terminal escape sequences; invisible format characters could reorder or hide text (a
//! right-to-left override turns `exe.txt` into something else on screen, a zero-width space
//! makes two different names look equal). Both are replaced by U+FFFD, which shows that
//! something was there.

/// The replacement shown instead of a neutralised character.
pub const REPLACEMENT: char = '\u{fffd}';

/// Whether `c` changes how text is shown without being seen itself: Unicode format characters
/// (general category Cf, Unicode 14: soft hyphen, bidi marks, embeddings, overrides and isolates,
/// zero-width space, joiners, word joiner and invisible operators, the byte order mark,
/// interlinear annotations, tag characters, ...), the line and paragraph separators, and the
/// blank Hangul fillers that render as nothing.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x13438
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// One line of text from elsewhere, safe to print: control characters (line breaks included)
/// and invisible format characters become [`REPLACEMENT`].
pub fn line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || is_invisible(c) {
                REPLACEMENT
            } else {
                c
            }
        })
        .collect()
}

/// Like [`line`], but keeps line breaks and tabs (a message body).
pub fn text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() || is_invisible(c) => REPLACEMENT,
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_escapes_are_replaced() {
        assert_eq!(
            line("a\x1b[31mb\nc\u{7f}"),
            "a\u{fffd}[31mb\u{fffd}c\u{fffd}"
        );
        assert_eq!(text("a\nb\tc\x1b"), "a\nb\tc\u{fffd}");
    }

    #[test]
    fn bidi_and_invisible_format_characters_are_replaced() {
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}', // embeddings, overrides
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}', // isolates
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}', // zero width, marks
            '\u{061C}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
            '\u{3164}',
        ] {
            let s = format!("invoice{c}exe.txt");
            assert_eq!(line(&s), "invoice\u{fffd}exe.txt", "U+{:04X}", c as u32);
            assert_eq!(text(&s), "invoice\u{fffd}exe.txt", "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn visible_text_in_any_script_is_kept() {
        for s in [
            "Anna Kowalska",
            "Łukasz Żółć",
            "Ελληνικά",
            "Русский",
            "العربية",
            "עברית",
            "中文",
            "日本語",
            "🚨 FLASH",
        ] {
            assert_eq!(line(s), s);
        }
    }
}
