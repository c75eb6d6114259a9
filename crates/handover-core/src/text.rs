//! Validated free text: messages, reasons and skill data, each bounded in bytes.

use serde::{Deserialize, Serialize};

use crate::ids::{validated_string, InvalidInput};
use crate::limits::{MESSAGE_BYTES_MAX, REASON_BYTES_MAX, SKILL_DATA_BYTES_MAX};

pub(crate) fn check_text(
    what: &'static str,
    value: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), InvalidInput> {
    if !allow_empty && value.trim().is_empty() {
        return Err(InvalidInput::Empty { what });
    }
    if value.len() > max {
        return Err(InvalidInput::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    // Line breaks and tabs are ordinary in chat text; other control characters are not.
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(InvalidInput::BadCharacter { what });
    }
    Ok(())
}

/// Declares bounded free text.
macro_rules! text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allow_empty:expr) => {
        validated_string!($(#[$doc])* $name, [], |v| check_text($what, v, $max, $allow_empty));
    };
}

/// `text` as a reason, cut at [`REASON_BYTES_MAX`] on a character boundary (the rules and the
/// clock write short reasons, but one built from a long name stays recordable); `fallback` if
/// it is still not a valid reason (empty, or with a control character).
pub(crate) fn reason_cut(mut text: String, fallback: &'static str) -> Reason {
    if text.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Reason::new(text).unwrap_or_else(|_| Reason::new(fallback).expect("a constant reason"))
}

text!(
    /// A chat message: not empty, at most [`MESSAGE_BYTES_MAX`] bytes.
    MessageText, "message", MESSAGE_BYTES_MAX, false
);
text!(
    /// Why a handoff, reclaim, escalation or close happened: not empty, at most
    /// [`REASON_BYTES_MAX`] bytes.
    Reason, "reason", REASON_BYTES_MAX, false
);
text!(
    /// A skill's input or outcome detail: may be empty, at most [`SKILL_DATA_BYTES_MAX`] bytes.
    SkillData, "skill data", SKILL_DATA_BYTES_MAX, true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_limit_counts_bytes() {
        assert!(MessageText::new("a".repeat(MESSAGE_BYTES_MAX)).is_ok());
        assert_eq!(
            MessageText::new("a".repeat(MESSAGE_BYTES_MAX + 1)),
            Err(InvalidInput::TooLong {
                what: "message",
                len: MESSAGE_BYTES_MAX + 1,
                max: MESSAGE_BYTES_MAX
            })
        );
        assert_eq!(
            MessageText::new(" \n"),
            Err(InvalidInput::Empty { what: "message" })
        );
        assert!(MessageText::new("line one\nline two\twith a tab").is_ok());
        assert_eq!(
            MessageText::new("bell\u{7}"),
            Err(InvalidInput::BadCharacter { what: "message" })
        );
    }

    #[test]
    fn reason_limit_is_one_kibibyte() {
        assert!(Reason::new("é".repeat(REASON_BYTES_MAX / 2)).is_ok());
        assert!(matches!(
            Reason::new("é".repeat(REASON_BYTES_MAX / 2 + 1)),
            Err(InvalidInput::TooLong { what: "reason", .. })
        ));
    }

    #[test]
    fn skill_data_may_be_empty() {
        assert_eq!(SkillData::new("").unwrap().as_str(), "");
    }
}
