//! What travels with a conversation when control changes hands: a summary, the topic when
//! known, and a few key/value variables. A human gives one with a handoff so the AI agent
//! starts informed; an AI agent gives one with an escalation so the humans see what it tried,
//! what it found and why it let go. Bounded and validated like every text, so a context is
//! always recordable.

use serde::{Deserialize, Serialize};

use crate::ids::{validated_string, InvalidInput, Specialty};
use crate::text::check_text as check;

/// Most variables a context holds.
pub const CONTEXT_VARIABLES_MAX: usize = 32;
/// Longest summary, in bytes.
pub const CONTEXT_SUMMARY_BYTES_MAX: usize = 4096;
/// Longest variable name, in bytes.
pub const CONTEXT_KEY_BYTES_MAX: usize = 64;
/// Longest variable value, in bytes.
pub const CONTEXT_VALUE_BYTES_MAX: usize = 1024;

validated_string!(
    /// A context's summary: what happened so far, in a few sentences.
    Summary, [], |v| check("summary", v, CONTEXT_SUMMARY_BYTES_MAX, false)
);
validated_string!(
    /// A context variable's name (`order_id`, `plan`): letters, digits, `_`, `-` and `.`.
    VariableName, [PartialOrd, Ord], |v| {
        check("variable name", v, CONTEXT_KEY_BYTES_MAX, false)?;
        if v.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            Ok(())
        } else {
            Err(InvalidInput::BadCharacter { what: "variable name" })
        }
    }
);
validated_string!(
    /// A context variable's value.
    VariableValue, [], |v| check("variable value", v, CONTEXT_VALUE_BYTES_MAX, true)
);

/// A conversation's context, given with a handoff or an escalation.
///
/// ```
/// use handover_core::context::Context;
///
/// let context = Context::new(
///     Some("Customer wants to change plan; already verified".to_owned()),
///     Some("billing".to_owned()),
///     [("plan", "pro"), ("order_id", "A-17")],
/// )?;
/// assert_eq!(context.topic().map(|t| t.as_str()), Some("billing"));
/// assert_eq!(context.variable("plan"), Some("pro"));
/// # Ok::<(), handover_core::InvalidInput>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ContextParts", into = "ContextParts")]
pub struct Context {
    summary: Option<Summary>,
    topic: Option<Specialty>,
    variables: Vec<(VariableName, VariableValue)>,
}

/// A context as stored, checked again when read.
#[derive(Clone, Serialize, Deserialize)]
struct ContextParts {
    summary: Option<Summary>,
    topic: Option<Specialty>,
    variables: Vec<(VariableName, VariableValue)>,
}

impl TryFrom<ContextParts> for Context {
    type Error = InvalidInput;
    fn try_from(parts: ContextParts) -> Result<Context, InvalidInput> {
        Context::from_parts(parts.summary, parts.topic, parts.variables)
    }
}

impl From<Context> for ContextParts {
    fn from(context: Context) -> ContextParts {
        ContextParts {
            summary: context.summary,
            topic: context.topic,
            variables: context.variables,
        }
    }
}

impl Context {
    /// A context from plain text: each part validated, at most [`CONTEXT_VARIABLES_MAX`]
    /// variables with distinct names (kept in name order).
    pub fn new<K: Into<String>, V: Into<String>>(
        summary: Option<String>,
        topic: Option<String>,
        variables: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Context, InvalidInput> {
        let summary = summary.map(Summary::new).transpose()?;
        let topic = topic.map(Specialty::new).transpose()?;
        let variables = variables
            .into_iter()
            .map(|(k, v)| Ok((VariableName::new(k)?, VariableValue::new(v)?)))
            .collect::<Result<Vec<_>, InvalidInput>>()?;
        Context::from_parts(summary, topic, variables)
    }

    /// A context from validated parts.
    pub fn from_parts(
        summary: Option<Summary>,
        topic: Option<Specialty>,
        mut variables: Vec<(VariableName, VariableValue)>,
    ) -> Result<Context, InvalidInput> {
        if variables.len() > CONTEXT_VARIABLES_MAX {
            return Err(InvalidInput::TooMany {
                what: "context variables",
                len: variables.len(),
                max: CONTEXT_VARIABLES_MAX,
            });
        }
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        if variables.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(InvalidInput::Duplicate {
                what: "context variable",
            });
        }
        Ok(Context {
            summary,
            topic,
            variables,
        })
    }

    /// The summary, if any.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    /// The topic, if known.
    pub fn topic(&self) -> Option<&Specialty> {
        self.topic.as_ref()
    }

    /// The variables, in name order.
    pub fn variables(&self) -> &[(VariableName, VariableValue)] {
        &self.variables
    }

    /// One variable's value.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.summary.is_none() && self.topic.is_none() && self.variables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_validated_and_bounded() {
        assert!(Context::new(Some(" ".into()), None, [("a", "b")]).is_err());
        assert!(Context::new(None, Some("".into()), Vec::<(String, String)>::new()).is_err());
        assert!(Context::new(None, None, [("bad key", "v")]).is_err());
        assert!(Context::new(None, None, [("k", "v"), ("k", "w")]).is_err());
        let many: Vec<(String, String)> = (0..=CONTEXT_VARIABLES_MAX)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(Context::new(None, None, many).is_err());
        assert!(
            Context::new(None, None, [("k", "x".repeat(CONTEXT_VALUE_BYTES_MAX + 1))]).is_err()
        );
        let ok = Context::new(
            Some("s".into()),
            Some("billing".into()),
            [("b", "2"), ("a", "1")],
        )
        .expect("valid");
        assert_eq!(ok.variables()[0].0.as_str(), "a");
    }

    #[test]
    fn a_stored_context_is_checked_again_when_read() {
        let ok = Context::new(None, None, [("a", "1")]).expect("valid");
        let bytes = bincode::serde::encode_to_vec(&ok, bincode::config::standard()).expect("enc");
        let (back, _): (Context, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("dec");
        assert_eq!(back, ok);
        let forged = ContextParts {
            summary: None,
            topic: None,
            variables: (0..=CONTEXT_VARIABLES_MAX)
                .map(|i| {
                    (
                        VariableName::new(format!("k{i}")).expect("k"),
                        VariableValue::new("v").expect("v"),
                    )
                })
                .collect(),
        };
        let bytes =
            bincode::serde::encode_to_vec(&forged, bincode::config::standard()).expect("enc");
        assert!(bincode::serde::decode_from_slice::<Context, _>(
            &bytes,
            bincode::config::standard()
        )
        .is_err());
    }
}
