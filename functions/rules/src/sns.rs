//! SNS's limits on what the scanner's alert and the reporter's summary send, in one place.

/// SNS's cap on a subject, in characters: a subject must be shorter than this.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// SNS's cap on a message: 256 KiB of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// `text` as an SNS subject: printable ASCII (SNS rejects line breaks and control characters, and
/// mail clients mangle the rest, so anything else becomes `?`), cut with `...` to fewer than
/// [`MAX_SUBJECT_CHARS`] characters.
pub fn subject(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.len() < MAX_SUBJECT_CHARS {
        clean.to_string()
    } else {
        // All ASCII by now, so byte offsets are character offsets.
        format!("{}...", &clean[..MAX_SUBJECT_CHARS - 4])
    }
}

/// `text` cut to at most `max` characters, ending in `...` when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => {
            let keep = text[..cut]
                .char_indices()
                .nth(max.saturating_sub(3))
                .map_or(cut, |c| c.0);
            format!("{}...", &text[..keep])
        }
    }
}

/// A value that came from the fleet (a tag, a name, a group's description) as one line of a
/// message: control characters (line breaks included) become `?`, so a value cannot start a line
/// of its own in the security team's mail, and it is cut to `max` characters with [`clip`].
pub fn field(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    clip(&one_line, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_stays_on_its_line_and_within_its_length() {
        assert_eq!(field("web-1", 100), "web-1");
        assert_eq!(
            field("x\n\nSubject: forged\r\u{7}", 100),
            "x??Subject: forged??"
        );
        let long = field(&"\u{e9}".repeat(500), 100);
        assert_eq!(long.chars().count(), 100);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn subjects_are_printable_ascii_under_the_cap() {
        assert_eq!(subject("[prod] 3 of 4 bad"), "[prod] 3 of 4 bad");
        assert_eq!(subject("caf\u{e9}\nline"), "caf??line");
        let long = subject(&"x".repeat(150));
        assert_eq!(long.len(), MAX_SUBJECT_CHARS - 1);
        assert!(long.ends_with("..."));
        assert_eq!(subject(&"é".repeat(99)).len(), 99);
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("short", 10), "short");
        let cut = clip(&"é".repeat(150), 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with("..."));
    }
}
