//! Escalation policies as data: named rules an operator reads, writes in TOML, checks and
//! versions.
//!
//! A [`PolicySpec`] is what a policy file says: its rules in order, each with a unique name
//! (recorded with every decision it makes) and a [`RuleKind`] with the kind's parameters. Its
//! [`version`](PolicySpec::version) is a digest of its content, not of its layout: two files
//! that say the same thing have one version. The default policy ships as
//! [`DEFAULT_POLICY_TOML`].
//!
//! ```
//! use handover_core::rules::PolicySpec;
//!
//! let policy = PolicySpec::parse(
//!     r#"
//!     name = "strict"
//!     [[rule]]
//!     name = "loop-guard"
//!     kind = "loop_guard"
//!     max_handoffs = 1
//!     cooldown_minutes = 30
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(policy.rules.len(), 1);
//! assert_eq!(policy.version().len(), 16);
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ids::SkillName;
use crate::policy::Concern;

mod eval;
pub use eval::*;

/// The default policy's file, as `handover policy default` prints it.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy/default.toml");

/// Most rules one policy may hold.
pub const RULES_MAX: usize = 64;

/// Longest rule or policy name, in bytes.
pub const RULE_NAME_MAX_BYTES: usize = 64;

/// What a policy file says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicySpec {
    /// The policy's name, for people.
    pub name: String,
    /// Its rules, in the order they run within each moment.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
}

/// One named rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
#[non_exhaustive]
pub struct RuleSpec {
    /// Unique within the policy: lowercase letters, digits and `-`.
    pub name: String,
    /// What the rule does, with its parameters.
    #[serde(flatten)]
    pub kind: RuleKind,
}

impl TryFrom<toml::Table> for RuleSpec {
    type Error = String;

    /// A rule's table: its `name`, its `kind`, and exactly the kind's parameters (read by hand
    /// because serde does not refuse unknown keys beside a flattened, tagged enum).
    fn try_from(mut table: toml::Table) -> Result<RuleSpec, String> {
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            Some(_) => return Err("a rule's name must be a string".to_owned()),
            None => return Err("a rule needs a name".to_owned()),
        };
        let kind = RuleKind::deserialize(toml::Value::Table(table.clone()))
            .map_err(|error| format!("rule {name:?}: {}", error.message()))?;
        let expected =
            toml::Table::try_from(&kind).map_err(|error| format!("rule {name:?}: {error}"))?;
        if let Some(unknown) = table.keys().find(|key| !expected.contains_key(*key)) {
            let takes: Vec<String> = expected
                .keys()
                .filter(|key| *key != "kind")
                .map(|key| format!("{key:?}"))
                .collect();
            let takes = match takes.is_empty() {
                true => "no parameters".to_owned(),
                false => takes.join(", "),
            };
            return Err(format!(
                "rule {name:?}: unknown key {unknown:?} for its kind, which takes {takes}"
            ));
        }
        Ok(RuleSpec { name, kind })
    }
}

/// What a rule does, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleKind {
    /// Before a handoff to AI: a concern the customer raised blocks it until this many
    /// customer messages or minutes have passed since, whichever comes first.
    ConcernsBlockHandoff {
        /// The concerns that block, by their audit names (`human_requested`, `complaint`,
        /// `negotiation`, `sensitive`).
        #[serde(with = "concern_names")]
        concerns: Vec<Concern>,
        /// Customer messages after the concern until it no longer blocks.
        for_customer_messages: u32,
        /// Minutes after the concern until it no longer blocks.
        for_minutes: u32,
    },
    /// Before a handoff to AI: at most this many handoffs in a conversation, and none within
    /// `cooldown_minutes` of an escalation to a person.
    LoopGuard {
        /// Handoffs to AI a conversation may have.
        max_handoffs: u32,
        /// Minutes after an escalation during which a handoff is refused.
        cooldown_minutes: u32,
    },
    /// Before a handoff to AI: the agent's specialties must include the conversation's topic,
    /// when it is known.
    SpecialtyMatchesTopic,
    /// While the AI is active: a customer who asks for a person is escalated.
    AskForPerson,
    /// While the AI is active: a complaint is escalated.
    ComplaintWhileAiActive,
    /// While the AI is active: the customer's last messages score at least `threshold` on
    /// frustration (0 calm, 1 furious), on average.
    Frustration {
        /// How many of the last customer messages are averaged.
        over_customer_messages: u32,
        /// The average that escalates.
        threshold: f64,
    },
    /// While the AI is active: the customer asked the same question `repeats` times, two
    /// messages being the same question when their words overlap by `similarity` or more.
    GoingInCircles {
        /// How many times the same question escalates.
        repeats: u32,
        /// The overlap of words (0 to 1) above which two messages are one question.
        similarity: f64,
    },
    /// While the AI is active: the AI reported `in_a_row` times in a row that it could not
    /// answer.
    AiCouldNotAnswer {
        /// Reports in a row that escalate.
        in_a_row: u32,
    },
    /// Before a skill runs: the named skills wait for a person's approval, for at most
    /// `deadline_minutes`.
    SkillApproval {
        /// The skills that wait.
        skills: Vec<String>,
        /// Minutes the AI waits for a decision before the request lapses.
        deadline_minutes: u32,
        /// Only when the skill's input (a JSON object) has an `amount` above this; without it,
        /// every run of the named skills waits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over_amount: Option<f64>,
    },
}

/// Why a policy file was refused: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(*line, *column))]
#[non_exhaustive]
pub struct PolicyError {
    /// The line (1-based) of the mistake, when the file's text locates it.
    pub line: Option<usize>,
    /// The column (1-based) of the mistake, when the file's text locates it.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    }
}

impl PolicySpec {
    /// Reads a policy file's text and checks it: the TOML's syntax and keys, each rule's
    /// parameters and bounds, names unique. A mistake names its line and column.
    pub fn parse(text: &str) -> Result<PolicySpec, PolicyError> {
        let spec: PolicySpec = toml::from_str(text).map_err(|error| {
            let (line, column) = match error.span() {
                Some(span) => {
                    let (line, column) = line_and_column(text, span.start);
                    (Some(line), Some(column))
                }
                None => (None, None),
            };
            PolicyError {
                line,
                column,
                message: error.message().to_owned(),
            }
        })?;
        spec.check().map_err(|(rule, message)| {
            let line = rule.and_then(|name| line_of_rule(text, name));
            PolicyError {
                line,
                column: None,
                message,
            }
        })?;
        Ok(spec)
    }

    /// The default policy.
    pub fn default_policy() -> PolicySpec {
        PolicySpec::parse(DEFAULT_POLICY_TOML).expect("the default policy file is valid")
    }

    /// The digest of what the policy says (its canonical form, not its layout or comments):
    /// 16 hexadecimal digits, recorded with every decision its rules make.
    pub fn version(&self) -> String {
        let canonical = toml::to_string(self).expect("a checked policy serializes");
        let digest = blake3::hash(canonical.as_bytes());
        digest.to_hex()[..16].to_owned()
    }

    /// Checks every bound; on a mistake, the rule it is in (if any) and what is wrong.
    fn check(&self) -> Result<(), (Option<&str>, String)> {
        check_name(&self.name).map_err(|m| (None, format!("the policy's name {m}")))?;
        if self.rules.len() > RULES_MAX {
            return Err((
                None,
                format!(
                    "a policy holds at most {RULES_MAX} rules, not {}",
                    self.rules.len()
                ),
            ));
        }
        let mut names = HashSet::new();
        for rule in &self.rules {
            let at = Some(rule.name.as_str());
            check_name(&rule.name).map_err(|m| (at, format!("rule name {m}")))?;
            if !names.insert(rule.name.as_str()) {
                return Err((at, format!("two rules are named {:?}", rule.name)));
            }
            rule.kind
                .check()
                .map_err(|m| (at, format!("rule {:?}: {m}", rule.name)))?;
        }
        Ok(())
    }
}

impl RuleKind {
    fn check(&self) -> Result<(), String> {
        let at_least_one = |what: &str, value: u32| {
            if value == 0 {
                Err(format!("{what} must be at least 1"))
            } else {
                Ok(())
            }
        };
        let share = |what: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{what} must be from 0 to 1, not {value}"))
            }
        };
        match self {
            RuleKind::ConcernsBlockHandoff {
                concerns,
                for_customer_messages,
                for_minutes,
            } => {
                if concerns.is_empty() {
                    return Err("concerns must name at least one concern".to_owned());
                }
                at_least_one("for_customer_messages", *for_customer_messages)?;
                at_least_one("for_minutes", *for_minutes)
            }
            RuleKind::LoopGuard { max_handoffs, .. } => at_least_one("max_handoffs", *max_handoffs),
            RuleKind::Frustration {
                over_customer_messages,
                threshold,
            } => {
                at_least_one("over_customer_messages", *over_customer_messages)?;
                share("threshold", *threshold)
            }
            RuleKind::GoingInCircles {
                repeats,
                similarity,
            } => {
                if *repeats < 2 {
                    return Err("repeats must be at least 2".to_owned());
                }
                share("similarity", *similarity)
            }
            RuleKind::AiCouldNotAnswer { in_a_row } => at_least_one("in_a_row", *in_a_row),
            RuleKind::SkillApproval {
                skills,
                deadline_minutes,
                over_amount,
            } => {
                if skills.is_empty() {
                    return Err("skills must name at least one skill".to_owned());
                }
                if let Some(bad) = skills.iter().find(|s| SkillName::new(s.as_str()).is_err()) {
                    return Err(format!("{bad:?} is not a skill name"));
                }
                if over_amount.is_some_and(|a| !a.is_finite() || a < 0.0) {
                    return Err("over_amount must be a number of at least 0".to_owned());
                }
                at_least_one("deadline_minutes", *deadline_minutes)
            }
            RuleKind::SpecialtyMatchesTopic
            | RuleKind::AskForPerson
            | RuleKind::ComplaintWhileAiActive => Ok(()),
        }
    }
}

/// Concerns in a policy file by the names the audit export gives them (the events keep their
/// own encoding).
mod concern_names {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::policy::Concern;

    const ALL: [Concern; 4] = [
        Concern::HumanRequested,
        Concern::Complaint,
        Concern::Negotiation,
        Concern::Sensitive,
    ];

    pub(super) fn serialize<S: Serializer>(
        concerns: &[Concern],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(concerns.iter().map(|concern| concern.as_str()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Concern>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|name| {
                ALL.into_iter()
                    .find(|concern| concern.as_str() == name)
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "unknown concern {name:?}; the concerns are human_requested, \
                             complaint, negotiation and sensitive"
                        ))
                    })
            })
            .collect()
    }
}

/// A name: 1 to [`RULE_NAME_MAX_BYTES`] bytes of lowercase ASCII letters, digits and `-`.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= RULE_NAME_MAX_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1 to {RULE_NAME_MAX_BYTES} lowercase letters, digits or '-'"
        ))
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The line of the `name = "<rule>"` that names a rule, for a mistake found after parsing.
fn line_of_rule(text: &str, rule: &str) -> Option<usize> {
    let quoted = format!("\"{rule}\"");
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with("name") && line.contains(&quoted)
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_parses_and_has_a_stable_version() {
        let policy = PolicySpec::default_policy();
        assert_eq!(policy.name, "default");
        assert!(policy.rules.len() >= 8);
        assert_eq!(policy.version(), PolicySpec::default_policy().version());
    }

    #[test]
    fn layout_and_comments_do_not_change_the_version_but_content_does() {
        let a = PolicySpec::parse(
            "name = \"p\"\n[[rule]]\nname = \"guard\"\nkind = \"loop_guard\"\nmax_handoffs = 2\ncooldown_minutes = 5\n",
        )
        .unwrap();
        let b = PolicySpec::parse(
            "# a comment\nname=\"p\"\n\n[[rule]]\ncooldown_minutes=5\nkind=\"loop_guard\"\nname=\"guard\"\nmax_handoffs=2\n",
        )
        .unwrap();
        let c = PolicySpec::parse(
            "name = \"p\"\n[[rule]]\nname = \"guard\"\nkind = \"loop_guard\"\nmax_handoffs = 3\ncooldown_minutes = 5\n",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }

    #[test]
    fn a_syntax_mistake_names_its_line_and_column() {
        let error = PolicySpec::parse("name = \"p\"\n[[rule]]\nname = guard\n").unwrap_err();
        assert_eq!(error.line, Some(3));
        assert!(error.column.is_some());
        assert!(error.to_string().starts_with("line 3, column "), "{error}");
    }

    #[test]
    fn an_unknown_kind_or_key_is_refused_where_it_is() {
        let error =
            PolicySpec::parse("name = \"p\"\n[[rule]]\nname = \"x\"\nkind = \"telepathy\"\n")
                .unwrap_err();
        assert!(error.message.contains("telepathy"), "{error}");
        assert!(error.line.is_some());
        let error = PolicySpec::parse(
            "name = \"p\"\n[[rule]]\nname = \"x\"\nkind = \"ask_for_person\"\nlanguages = []\n",
        )
        .unwrap_err();
        assert!(error.message.contains("languages"), "{error}");
    }

    #[test]
    fn bounds_and_names_are_checked_at_the_rule() {
        let refused = |text: &str, says: &str, line: usize| {
            let error = PolicySpec::parse(text).unwrap_err();
            assert!(error.message.contains(says), "{error}");
            assert_eq!(error.line, Some(line), "{error}");
        };
        refused(
            "name = \"p\"\n[[rule]]\nname = \"f\"\nkind = \"frustration\"\nover_customer_messages = 3\nthreshold = 1.5\n",
            "threshold must be from 0 to 1",
            3,
        );
        refused(
            "name = \"p\"\n[[rule]]\nname = \"g\"\nkind = \"loop_guard\"\nmax_handoffs = 0\ncooldown_minutes = 1\n",
            "max_handoffs must be at least 1",
            3,
        );
        refused(
            "name = \"p\"\n[[rule]]\nname = \"a\"\nkind = \"ask_for_person\"\n[[rule]]\nname = \"a\"\nkind = \"complaint_while_ai_active\"\n",
            "two rules are named",
            3,
        );
        refused(
            "name = \"p\"\n[[rule]]\nname = \"Bad Name\"\nkind = \"ask_for_person\"\n",
            "lowercase letters",
            3,
        );
        refused(
            "name = \"p\"\n[[rule]]\nname = \"s\"\nkind = \"skill_approval\"\nskills = []\ndeadline_minutes = 5\n",
            "at least one skill",
            3,
        );
    }

    #[test]
    fn concerns_are_named_as_the_audit_names_them() {
        let policy = PolicySpec::parse(
            "name = \"p\"\n[[rule]]\nname = \"c\"\nkind = \"concerns_block_handoff\"\nconcerns = [\"complaint\", \"human_requested\"]\nfor_customer_messages = 1\nfor_minutes = 1\n",
        )
        .unwrap();
        assert_eq!(
            policy.rules[0].kind,
            RuleKind::ConcernsBlockHandoff {
                concerns: vec![Concern::Complaint, Concern::HumanRequested],
                for_customer_messages: 1,
                for_minutes: 1,
            }
        );
    }
}
