//! The operator's settings the rules apply: waiting thresholds per team, the AI reply
//! deadline, idle closing, and the texts of customer notices. Plain values given to the rules
//! through [`crate::Ctx`], so replaying a log under the same settings decides the same.

use std::collections::BTreeMap;

use crate::event::NoticeKind;
use crate::ids::{AiAgentId, Language, TeamId};
use crate::text::MessageText;

/// How long a conversation may wait for a human in a team's queue: passing `warning_ms`
/// records an `sla_warning`, passing `breach_ms` an `sla_breached`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sla {
    /// Milliseconds of waiting before the warning.
    pub warning_ms: u64,
    /// Milliseconds of waiting before the breach.
    pub breach_ms: u64,
}

impl Default for Sla {
    /// 60 s to the warning, 5 min to the breach.
    fn default() -> Sla {
        Sla {
            warning_ms: 60_000,
            breach_ms: 300_000,
        }
    }
}

/// The settings the time and notice rules read.
///
/// ```
/// use handover_core::{Settings, Sla, TeamId};
///
/// let mut settings = Settings::default();
/// settings.team_sla.insert(TeamId::new("vip").unwrap(), Sla { warning_ms: 10_000, breach_ms: 30_000 });
/// assert_eq!(settings.sla(Some(&TeamId::new("vip").unwrap())).breach_ms, 30_000);
/// assert_eq!(settings.sla(None).breach_ms, 300_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The waiting thresholds of a queue with no entry in `team_sla`.
    pub default_sla: Sla,
    /// The waiting thresholds of each team's queue.
    pub team_sla: BTreeMap<TeamId, Sla>,
    /// How long the AI agent has to answer a customer's message before the conversation is
    /// escalated with cause `ai_timeout` (default 30 s).
    pub ai_reply_deadline_ms: u64,
    /// The reply deadline of particular AI agents.
    pub agent_reply_deadline_ms: BTreeMap<AiAgentId, u64>,
    /// Close a conversation whose customer has written nothing for this long (off by default).
    pub idle_close_ms: Option<u64>,
    /// The texts of customer notices, by kind and language.
    pub notices: NoticeTexts,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            default_sla: Sla::default(),
            team_sla: BTreeMap::new(),
            ai_reply_deadline_ms: 30_000,
            agent_reply_deadline_ms: BTreeMap::new(),
            idle_close_ms: None,
            notices: NoticeTexts::default(),
        }
    }
}

impl Settings {
    /// The thresholds of `team`'s queue (the default for the general queue or an unlisted team).
    pub fn sla(&self, team: Option<&TeamId>) -> Sla {
        team.and_then(|t| self.team_sla.get(t))
            .copied()
            .unwrap_or(self.default_sla)
    }

    /// The reply deadline of `agent`.
    pub fn reply_deadline_ms(&self, agent: &AiAgentId) -> u64 {
        self.agent_reply_deadline_ms
            .get(agent)
            .copied()
            .unwrap_or(self.ai_reply_deadline_ms)
    }
}

/// The texts of customer notices by kind and language (primary subtag: `en`, `pt`, `es`).
/// `{agent}` in a text is replaced by the AI agent's name, `{human}` by the human's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeTexts {
    texts: BTreeMap<(NoticeKind, String), String>,
}

impl Default for NoticeTexts {
    /// English, Portuguese and Spanish texts for every kind.
    fn default() -> NoticeTexts {
        let mut notices = NoticeTexts {
            texts: BTreeMap::new(),
        };
        let defaults = [
            (
                NoticeKind::AiJoined,
                "en",
                "{agent}, an AI assistant, has joined the conversation.",
            ),
            (
                NoticeKind::AiJoined,
                "pt",
                "{agent}, um assistente de IA, entrou na conversa.",
            ),
            (
                NoticeKind::AiJoined,
                "es",
                "{agent}, un asistente de IA, se ha unido a la conversación.",
            ),
            (
                NoticeKind::AiLeft,
                "en",
                "The AI assistant {agent} has left the conversation.",
            ),
            (
                NoticeKind::AiLeft,
                "pt",
                "O assistente de IA {agent} saiu da conversa.",
            ),
            (
                NoticeKind::AiLeft,
                "es",
                "El asistente de IA {agent} ha salido de la conversación.",
            ),
            (
                NoticeKind::WaitingForPerson,
                "en",
                "Please wait: a person will be with you shortly.",
            ),
            (
                NoticeKind::WaitingForPerson,
                "pt",
                "Aguarde: uma pessoa vai atendê-lo em breve.",
            ),
            (
                NoticeKind::WaitingForPerson,
                "es",
                "Espere: una persona le atenderá en breve.",
            ),
            (
                NoticeKind::PersonJoined,
                "en",
                "{human} has joined the conversation.",
            ),
            (
                NoticeKind::PersonJoined,
                "pt",
                "{human} entrou na conversa.",
            ),
            (
                NoticeKind::PersonJoined,
                "es",
                "{human} se ha unido a la conversación.",
            ),
        ];
        for (kind, language, text) in defaults {
            notices.set(kind, language, text);
        }
        notices
    }
}

impl NoticeTexts {
    /// Sets the text of `kind` in `language` (its primary subtag, e.g. `fr`).
    pub fn set(&mut self, kind: NoticeKind, language: &str, text: impl Into<String>) {
        self.texts
            .insert((kind, language.to_ascii_lowercase()), text.into());
    }

    /// The notice of `kind` for a customer speaking `language`, with its names filled in: the
    /// customer's language when a text exists in it, English otherwise. `None` when neither
    /// exists or the filled-in text is not a valid message (a notice is then not recorded).
    pub fn render(
        &self,
        kind: NoticeKind,
        language: Option<&Language>,
        agent: Option<&str>,
        human: Option<&str>,
    ) -> Option<(MessageText, Language)> {
        let wanted = language.map(Language::primary);
        let (template, language) = wanted
            .as_ref()
            .and_then(|primary| {
                self.texts
                    .get(&(kind, primary.clone()))
                    .map(|t| (t, language.cloned()))
            })
            .or_else(|| {
                self.texts
                    .get(&(kind, String::from("en")))
                    .map(|t| (t, Some(Language::english())))
            })?;
        let text = template
            .replace("{agent}", agent.unwrap_or("the AI assistant"))
            .replace("{human}", human.unwrap_or("An agent"));
        Some((MessageText::new(text).ok()?, language?))
    }
}
