//! A policy applied: what its rules decide at each of the three moments. Every function reads
//! only the conversation's state (folded from the log), the moment's input and the time, so
//! `decide` calls them on the live path and `handover audit what-if` calls the same functions
//! on a recorded log under another policy.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{PolicyError, PolicySpec, RuleKind, RULE_NAME_MAX_BYTES};
use crate::agent::AiAgent;
use crate::conversation::OpenConversation;
use crate::event::EscalationCause;
use crate::ids::{validated_string, InvalidInput, SkillName, Specialty};
use crate::policy::{Concern, Policy};
use crate::text::{Reason, SkillData};
use crate::time::Timestamp;

fn check_rule_name(value: &str) -> Result<(), InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Empty { what: "rule name" });
    }
    if value.len() > RULE_NAME_MAX_BYTES {
        return Err(InvalidInput::TooLong {
            what: "rule name",
            len: value.len(),
            max: RULE_NAME_MAX_BYTES,
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(InvalidInput::BadCharacter { what: "rule name" });
    }
    Ok(())
}

validated_string!(
    /// A rule's name, unique within its policy and recorded with every decision it makes:
    /// lowercase letters, digits and `-`.
    RuleName, [PartialOrd, Ord], check_rule_name
);

validated_string!(
    /// A policy's version: 16 hexadecimal digits of the digest of what it says.
    PolicyVersion, [PartialOrd, Ord], |v| {
        if v.len() == 16 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(())
        } else {
            Err(InvalidInput::BadCharacter { what: "policy version" })
        }
    }
);

/// A policy ready to apply: its rules, its name and its version, computed once.
///
/// It is a [`Policy`] too (concerns are recognised by the built-in lexicon), so a runtime takes
/// it where it takes any policy.
///
/// ```
/// use handover_core::rules::Rules;
///
/// let rules = Rules::parse(
///     r#"
///     name = "strict"
///     [[rule]]
///     name = "one-handoff"
///     kind = "loop_guard"
///     max_handoffs = 1
///     cooldown_minutes = 60
///     "#,
/// )?;
/// assert_eq!(rules.name(), "strict");
/// assert_eq!(rules.version().as_str().len(), 16);
/// # Ok::<(), handover_core::rules::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Rules {
    spec: PolicySpec,
    version: PolicyVersion,
    /// Each rule's name, validated once: the hot path only clones the one that fires.
    names: Vec<RuleName>,
}

impl Rules {
    /// The policy `spec` says.
    pub fn new(spec: PolicySpec) -> Rules {
        let version = PolicyVersion::new(spec.version()).expect("a digest is a valid version");
        let names = spec
            .rules
            .iter()
            .map(|rule| {
                RuleName::new(rule.name.as_str()).expect("a checked policy's names are valid")
            })
            .collect();
        Rules {
            spec,
            version,
            names,
        }
    }

    /// Reads and checks a policy file's text (see [`PolicySpec::parse`]).
    pub fn parse(text: &str) -> Result<Rules, PolicyError> {
        PolicySpec::parse(text).map(Rules::new)
    }

    /// The default policy ([`super::DEFAULT_POLICY_TOML`]), built once.
    pub fn default_rules() -> &'static Rules {
        static DEFAULT: OnceLock<Rules> = OnceLock::new();
        DEFAULT.get_or_init(|| Rules::new(PolicySpec::default_policy()))
    }

    /// What the policy says.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its version, recorded with every decision its rules make.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    fn rules(&self) -> impl Iterator<Item = (&RuleName, &RuleKind)> {
        self.names
            .iter()
            .zip(self.spec.rules.iter().map(|rule| &rule.kind))
    }

    /// Before a handoff to AI: the first rule, in the policy's order, that refuses it.
    /// `open` is the conversation before the handoff; `topic` the one the handoff's context
    /// gives, if any (otherwise the conversation's last known topic counts).
    pub fn before_handoff(
        &self,
        open: &OpenConversation,
        agent: &AiAgent,
        topic: Option<&Specialty>,
        now: Timestamp,
    ) -> Option<HandoffRefusal> {
        let signals = &open.signals;
        for (rule, kind) in self.rules() {
            let refusal = match kind {
                RuleKind::ConcernsBlockHandoff {
                    concerns,
                    for_customer_messages,
                    for_minutes,
                } => signals
                    .concerns
                    .iter()
                    .filter(|mark| concerns.contains(&mark.concern))
                    .find(|mark| {
                        let messages_since = signals.customer_messages - mark.message;
                        let recent_enough = match mark.at {
                            Some(at) => now.millis_since(at) < minutes(*for_minutes),
                            None => true,
                        };
                        messages_since < *for_customer_messages && recent_enough
                    })
                    .map(|mark| HandoffRefusal {
                        rule: rule.clone(),
                        kind: RefusalKind::Concern(mark.concern),
                        reason: format!(
                            "{} (within {for_customer_messages} customer messages or \
                             {for_minutes} minutes of it)",
                            mark.concern.describe()
                        ),
                    }),
                RuleKind::LoopGuard {
                    max_handoffs,
                    cooldown_minutes,
                } => {
                    if open.epoch.0 >= u64::from(*max_handoffs) {
                        Some(HandoffRefusal {
                            rule: rule.clone(),
                            kind: RefusalKind::TooManyHandoffs { max: *max_handoffs },
                            reason: format!(
                                "the conversation was already handed to AI {} times; the \
                                 limit is {max_handoffs}",
                                open.epoch.0
                            ),
                        })
                    } else {
                        signals
                            .last_escalation_at
                            .filter(|at| now.millis_since(*at) < minutes(*cooldown_minutes))
                            .map(|_| HandoffRefusal {
                                rule: rule.clone(),
                                kind: RefusalKind::Cooldown {
                                    minutes: *cooldown_minutes,
                                },
                                reason: format!(
                                    "the AI let go of it less than {cooldown_minutes} minutes ago"
                                ),
                            })
                    }
                }
                RuleKind::SpecialtyMatchesTopic => {
                    let topic = topic.or(signals.topic.as_ref());
                    let specialties = &agent.profile.specialties;
                    topic
                        .filter(|topic| {
                            !specialties.is_empty()
                                && !specialties
                                    .iter()
                                    .any(|s| s.as_str().eq_ignore_ascii_case(topic.as_str()))
                        })
                        .map(|topic| HandoffRefusal {
                            rule: rule.clone(),
                            kind: RefusalKind::Specialty {
                                topic: topic.clone(),
                            },
                            reason: format!(
                                "AI agent {} does not cover the topic {topic}",
                                agent.profile.name
                            ),
                        })
                }
                _ => None,
            };
            if refusal.is_some() {
                return refusal;
            }
        }
        None
    }

    /// On a customer's message while an AI agent is active: the first rule, in the policy's
    /// order, that escalates. `open` is the conversation with the message folded in (its
    /// signals count it), `concerns` what the message raised, `scorer` the frustration scorer.
    pub fn on_customer_message(
        &self,
        open: &OpenConversation,
        concerns: &[Concern],
        scorer: &dyn Policy,
    ) -> Option<RuleEscalation> {
        self.rules()
            .find_map(|(rule, kind)| message_rule(rule, kind, open, concerns, scorer))
    }

    /// Every rule that would escalate on this message (not just the first): what
    /// `handover policy test` shows.
    pub fn all_on_customer_message(
        &self,
        open: &OpenConversation,
        concerns: &[Concern],
        scorer: &dyn Policy,
    ) -> Vec<RuleEscalation> {
        self.rules()
            .filter_map(|(rule, kind)| message_rule(rule, kind, open, concerns, scorer))
            .collect()
    }

    /// After the AI agent reported it could not answer: the first rule that escalates.
    /// `open` has the report folded in.
    pub fn on_ai_miss(&self, open: &OpenConversation) -> Option<RuleEscalation> {
        let misses = open.signals.ai_misses_in_a_row;
        self.rules().find_map(|(rule, kind)| match kind {
            RuleKind::AiCouldNotAnswer { in_a_row } if misses >= *in_a_row => {
                Some(RuleEscalation {
                    rule: rule.clone(),
                    cause: EscalationCause::AiCouldNotAnswer,
                    reason: fixed(format!(
                        "the AI could not answer {misses} times in a row (the limit is {in_a_row})"
                    )),
                })
            }
            _ => None,
        })
    }

    /// Before a skill runs: the first rule that makes it wait for a person's approval.
    pub fn before_skill(&self, name: &SkillName, input: &SkillData) -> Option<ApprovalGate> {
        self.rules().find_map(|(rule, kind)| match kind {
            RuleKind::SkillApproval {
                skills,
                deadline_minutes,
                over_amount,
            } if skills.iter().any(|s| s == name.as_str()) => {
                let gated = match over_amount {
                    None => true,
                    // An input without a readable amount waits: refusing to guess is safer.
                    Some(limit) => amount(input.as_str()).is_none_or(|a| a > *limit),
                };
                gated.then(|| ApprovalGate {
                    rule: rule.clone(),
                    deadline_ms: minutes(*deadline_minutes),
                })
            }
            _ => None,
        })
    }
}

fn message_rule(
    rule: &RuleName,
    kind: &RuleKind,
    open: &OpenConversation,
    concerns: &[Concern],
    scorer: &dyn Policy,
) -> Option<RuleEscalation> {
    let signals = &open.signals;
    let fired = |cause, reason: String| {
        Some(RuleEscalation {
            rule: rule.clone(),
            cause,
            reason: fixed(reason),
        })
    };
    match kind {
        RuleKind::AskForPerson if concerns.contains(&Concern::HumanRequested) => fired(
            EscalationCause::CustomerAskedForHuman,
            "the customer asked for a human".to_owned(),
        ),
        RuleKind::ComplaintWhileAiActive if concerns.contains(&Concern::Complaint) => fired(
            EscalationCause::Complaint,
            "the customer complained".to_owned(),
        ),
        RuleKind::Frustration {
            over_customer_messages,
            threshold,
        } => {
            let window = usize::try_from(*over_customer_messages).unwrap_or(usize::MAX);
            let last = signals.recent.iter().rev().take(window);
            let (count, total) = last.fold((0usize, 0.0), |(n, sum), message| {
                (n + 1, sum + scorer.frustration_of(message))
            });
            let average = if count == 0 {
                0.0
            } else {
                total / count as f64
            };
            if count > 0 && average >= *threshold {
                fired(
                    EscalationCause::Frustration,
                    format!(
                        "the customer sounds frustrated: {average:.2} over the last {count} \
                         messages (the threshold is {threshold})"
                    ),
                )
            } else {
                None
            }
        }
        RuleKind::GoingInCircles {
            repeats,
            similarity,
        } => {
            let current = signals.recent.back()?;
            if current.words.is_empty() {
                return None;
            }
            let same = signals
                .recent
                .iter()
                .filter(|m| {
                    m.epoch == current.epoch && current.words.similarity(&m.words) >= *similarity
                })
                .count();
            if same >= usize::try_from(*repeats).unwrap_or(usize::MAX) {
                fired(
                    EscalationCause::GoingInCircles,
                    format!("the customer asked the same question {same} times"),
                )
            } else {
                None
            }
        }
        _ => None,
    }
}

fn minutes(minutes: u32) -> u64 {
    u64::from(minutes) * 60_000
}

/// A rule's reason as recordable text.
fn fixed(text: String) -> Reason {
    crate::text::reason_cut(text, "a rule fired")
}

/// The number after `"amount":` in a JSON object's text, if there is one.
fn amount(input: &str) -> Option<f64> {
    let rest = &input[input.find("\"amount\"")? + "\"amount\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Why a handoff was refused by a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandoffRefusal {
    /// The rule.
    pub rule: RuleName,
    /// What it found.
    pub kind: RefusalKind,
    /// In words.
    pub reason: String,
}

/// What a handoff rule found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// A concern the customer raised, still within the rule's window.
    Concern(Concern),
    /// The conversation had as many handoffs as the loop guard allows.
    TooManyHandoffs {
        /// The limit.
        max: u32,
    },
    /// The AI let go of it within the loop guard's cooldown.
    Cooldown {
        /// The cooldown.
        minutes: u32,
    },
    /// The agent does not cover the conversation's topic.
    Specialty {
        /// The topic.
        topic: Specialty,
    },
    /// One of the embedder's rules refused it.
    Embedder,
}

impl HandoffRefusal {
    /// Whether it is the loop guard's (refused with [`crate::Rejection::HandoffLoop`]).
    pub fn is_loop_guard(&self) -> bool {
        matches!(
            self.kind,
            RefusalKind::TooManyHandoffs { .. } | RefusalKind::Cooldown { .. }
        )
    }
}

/// A rule's decision to give the conversation back to humans.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleEscalation {
    /// The rule.
    pub rule: RuleName,
    /// The cause recorded on the escalation.
    pub cause: EscalationCause,
    /// In words.
    pub reason: Reason,
}

/// A rule's decision that a skill waits for a person's approval.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApprovalGate {
    /// The rule.
    pub rule: RuleName,
    /// How long the AI waits for a decision.
    pub deadline_ms: u64,
}

/// A verdict of one of the embedder's own rules, carried in the command so `decide` records
/// it (a replay reads it from the log and never runs the embedder's code).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleVerdict {
    /// The embedder's rule.
    pub rule: RuleName,
    /// In words.
    pub reason: Reason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_from_json_text() {
        assert_eq!(amount(r#"{"order":"A-1","amount": 120.5}"#), Some(120.5));
        assert_eq!(amount(r#"{"amount":"30"}"#), Some(30.0));
        assert_eq!(amount(r#"{"order":"A-1"}"#), None);
        assert_eq!(amount(r#"{"amount": null}"#), None);
    }

    #[test]
    fn names_and_versions_are_validated() {
        assert!(RuleName::new("loop-guard").is_ok());
        assert!(RuleName::new("Loop Guard").is_err());
        assert!(RuleName::new("").is_err());
        assert!(PolicyVersion::new("0123456789abcdef").is_ok());
        assert!(PolicyVersion::new("0123456789ABCDEF").is_err());
        assert!(PolicyVersion::new("0123").is_err());
    }

    #[test]
    fn the_default_rules_have_the_default_spec_s_version() {
        let rules = Rules::default_rules();
        assert_eq!(
            rules.version().as_str(),
            PolicySpec::default_policy().version()
        );
        assert_eq!(rules.name(), "default");
    }
}
