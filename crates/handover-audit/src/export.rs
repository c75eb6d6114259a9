//! The export: every event of the log as one JSON object per line, as JSON Lines or as
//! CloudEvents 1.0, in global order.
//!
//! The lines are built here from dedicated structs, never by serialising core types: the
//! export is a stable contract (`docs/audit-format.md`) that must not move when a Rust type
//! is renamed. Fields are only ever added.

use std::io::{self, Write};

use std::collections::HashMap;

use handover_core::context::{VariableName, VariableValue};
use handover_core::{
    AiAgentEvent, AiAgentId, Author, ConversationEvent, ConversationId, EscalationCause, Event,
    HumanEvent, HumanId, SkillOutcome, StreamId, SystemActor, Timestamp, TransferTarget,
};
use handover_sled::SledStore;
use handover_store::{Damage, LogLocation, RecordedAt, RecordedEvent, StoreError};
use serde::Serialize;

use crate::error::AuditError;
use crate::log::AuditLog;
use crate::progress::{NoProgress, Progress, Ticker};
use crate::timefmt::format_recorded_at;

/// What a CloudEvents `type` starts with; the event's type name follows, e.g.
/// `dev.handover.handed_off_to_ai`.
pub const CLOUDEVENTS_TYPE_PREFIX: &str = "dev.handover.";

/// What a CloudEvents `source` starts with; the percent-encoded stream name follows, e.g.
/// `/handover/streams/conversation-0190f1f0-0000-7000-8000-000000000001`.
const CLOUDEVENTS_SOURCE_PREFIX: &str = "/handover/streams/";

/// The shape of each exported line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// One JSON object per event: `position`, `stream`, `conversation_id`, `seq`,
    /// `recorded_at`, `type`, `data`, `tenant`.
    #[default]
    JsonLines,
    /// One CloudEvents 1.0 event per line, in structured mode.
    CloudEvents,
}

/// What to export, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The shape of each line.
    pub format: ExportFormat,
    /// Only this conversation's events; `None` for the whole log (AI-agent streams included).
    pub conversation: Option<ConversationId>,
}

/// Writes the log to `out`, one line per event, in global position order, and returns how
/// many lines were written.
///
/// Each line is written as soon as its record is read, so a damaged record ends the export
/// with [`AuditError::Store`] after every line before it. A conversation the log does not hold
/// is [`AuditError::UnknownConversation`]. Write failures are [`AuditError::Write`], with the
/// operating system's error kind kept (a reader that went away is `BrokenPipe`). `out` is not
/// flushed: wrap it in a `BufWriter` and flush it when done.
pub fn export(
    store: &SledStore,
    options: &ExportOptions,
    out: &mut impl Write,
) -> Result<u64, AuditError> {
    export_of(AuditLog::Sled(store), options, out)
}

/// [`export`] over any [`AuditLog`]: the same lines, byte for byte, for the same log, whether
/// it is read from a sled store or held in memory. In memory, a gap in the positions or in a
/// stream's seqs is [`AuditError::Store`] with [`Damage::Gap`], after every line before it.
pub fn export_of(
    log: AuditLog<'_>,
    options: &ExportOptions,
    out: &mut impl Write,
) -> Result<u64, AuditError> {
    export_of_with_progress(log, options, out, &NoProgress)
}

/// [`export_of`], telling `progress` how far it has got: through the whole log, or through
/// the conversation's events with [`ExportOptions::conversation`].
pub fn export_of_with_progress(
    log: AuditLog<'_>,
    options: &ExportOptions,
    out: &mut impl Write,
    progress: &dyn Progress,
) -> Result<u64, AuditError> {
    let mut lines = 0;
    let mut writer = ExportLines::new(options.format);
    match options.conversation {
        // A stream's seq order is its position order, so one conversation is one read of its
        // own stream instead of a walk over the whole log.
        Some(id) => {
            let records = log.read_stream(&StreamId::Conversation(id))?;
            if records.is_empty() {
                return Err(AuditError::UnknownConversation(id));
            }
            let mut ticker = Ticker::start(progress, records.len() as u64);
            for record in &records {
                writer.write(record, out)?;
                lines += 1;
                ticker.tick();
            }
        }
        None => {
            let mut ticker = Ticker::start(progress, log.head());
            for record in log.iter_all() {
                let record = record?;
                writer.write(&record, out)?;
                lines += 1;
                ticker.tick();
            }
        }
    }
    Ok(lines)
}

/// The export's lines one record at a time, for a reader that follows a log as it grows
/// (`handover audit export --follow`): given the records in position order from position 1,
/// it writes the same bytes as [`export_of`]. A line's `tenant` comes from its stream's first
/// event, so a record that is not to be written (before the position a reader resumes from,
/// or another conversation's) still goes through [`ExportLines::skip`].
///
/// ```
/// use handover_audit::{ExportFormat, ExportLines};
/// use handover_core::{AgentName, AiAgentEvent, AiAgentId, Event, StreamId, TenantId};
/// use handover_store::{RecordedAt, RecordedEvent};
///
/// let agent = AiAgentId::new("faq-bot").unwrap();
/// let record = |seq, event| RecordedEvent {
///     stream: StreamId::AiAgent(agent.clone()),
///     seq,
///     position: seq,
///     recorded_at: RecordedAt(1_795_653_037_123_456),
///     event,
/// };
/// let mut lines = ExportLines::new(ExportFormat::JsonLines);
/// let registered = AiAgentEvent::RegisteredIn {
///     agent_id: agent.clone(),
///     name: AgentName::new("FAQ").unwrap(),
///     specialties: Vec::new(),
///     tenant: TenantId::new("acme").unwrap(),
/// };
/// lines.skip(&record(1, Event::AiAgent(registered)));
/// let mut out = Vec::new();
/// let activated = AiAgentEvent::Activated { agent_id: agent.clone() };
/// lines.write(&record(2, Event::AiAgent(activated)), &mut out).unwrap();
/// let line = String::from_utf8(out).unwrap();
/// assert!(line.starts_with(r#"{"position":2,"stream":"ai-agent-faq-bot""#), "{line}");
/// assert!(line.ends_with(",\"tenant\":\"acme\"}\n"), "{line}");
/// ```
pub struct ExportLines {
    format: ExportFormat,
    tenants: Tenants,
}

impl std::fmt::Debug for ExportLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportLines")
            .field("format", &self.format)
            .field("streams", &self.tenants.by_stream.len())
            .finish()
    }
}

impl ExportLines {
    /// Lines of `format`, for a log read from position 1.
    pub fn new(format: ExportFormat) -> ExportLines {
        ExportLines {
            format,
            tenants: Tenants::default(),
        }
    }

    /// Reads what a later line needs from `record` (its stream's tenant) without writing it.
    pub fn skip(&mut self, record: &RecordedEvent) {
        self.tenants.of(record);
    }

    /// Writes `record` as one line, `\n` included, with the errors of [`export_of`]: a
    /// `recorded_at` the format cannot write is [`AuditError::Store`], a failed write
    /// [`AuditError::Write`] with its error kind kept. `out` is not flushed.
    pub fn write(
        &mut self,
        record: &RecordedEvent,
        out: &mut impl Write,
    ) -> Result<(), AuditError> {
        let format = self.format;
        write_line(out, record, self.tenants.of(record), format)
    }
}

/// One event as the JSON Lines export writes it: `{"position", "stream", "conversation_id",
/// "seq", "recorded_at", "type", "data"}` (the contract is `docs/audit-format.md`), for a
/// service that shows events in the same dialect the audit exports them, a live feed for
/// instance. The value's fields are those of an export line (a `serde_json` map keeps them in
/// key order, which readers must not depend on anyway), but for `tenant`: one record alone
/// tells its stream's tenant only when it names it (a conversation's opening, a registration),
/// so `tenant` is null for the others, where the export fills it in from the stream's first
/// event.
///
/// Fails only on a `recorded_at` outside the years 0000 to 9999, which the store never
/// records ([`AuditError::Store`], naming the record).
///
/// ```
/// use handover_store::{RecordedAt, RecordedEvent};
/// use handover_core::{AiAgentEvent, AiAgentId, Event, StreamId};
///
/// let agent = AiAgentId::new("faq-bot").unwrap();
/// let record = RecordedEvent {
///     stream: StreamId::AiAgent(agent.clone()),
///     seq: 2,
///     position: 7,
///     recorded_at: RecordedAt(1_795_653_037_123_456),
///     event: Event::AiAgent(AiAgentEvent::Activated { agent_id: agent }),
/// };
/// let json = handover_audit::event_json(&record).unwrap();
/// assert_eq!(
///     json,
///     serde_json::json!({
///         "position": 7,
///         "stream": "ai-agent-faq-bot",
///         "conversation_id": null,
///         "seq": 2,
///         "recorded_at": "2026-11-26T00:30:37.123456Z",
///         "type": "ai_agent_activated",
///         "data": { "agent_id": "faq-bot" },
///         "tenant": null,
///     })
/// );
/// ```
pub fn event_json(record: &RecordedEvent) -> Result<serde_json::Value, AuditError> {
    event_json_in(record, tenant_named(&record.event))
}

/// [`event_json`] for a record of a stream whose tenant the caller knows (from the stream's
/// first event, as the export learns it): the line exactly as the export writes it.
pub fn event_json_in(
    record: &RecordedEvent,
    tenant: Option<&str>,
) -> Result<serde_json::Value, AuditError> {
    let recorded_at = recorded_at(record)?;
    let stream = record.stream.to_string();
    let conversation_id = record.stream.conversation_id().map(|id| id.to_string());
    Ok(serde_json::to_value(JsonLine {
        position: record.position,
        stream: &stream,
        conversation_id: conversation_id.as_deref(),
        seq: record.seq,
        recorded_at: &recorded_at,
        event_type: record.event.type_name(),
        data: Data::of(&record.event),
        tenant,
    })?)
}

/// The record's `recorded_at` as the export writes it; a time RFC 3339 cannot write is damage.
fn recorded_at(record: &RecordedEvent) -> Result<String, AuditError> {
    Ok(format_recorded_at(record.recorded_at).ok_or_else(|| {
        StoreError::corrupted(
            LogLocation::record(&record.stream, record.seq, record.position),
            Damage::Record,
            format!(
                "recorded_at {} microseconds is outside the years 0000 to 9999",
                record.recorded_at.as_micros()
            ),
        )
    })?)
}

/// Writes one record as one line.
fn write_line(
    out: &mut impl Write,
    record: &RecordedEvent,
    tenant: Option<&str>,
    format: ExportFormat,
) -> Result<(), AuditError> {
    let recorded_at = recorded_at(record)?;
    let stream = record.stream.to_string();
    let conversation_id = record.stream.conversation_id().map(|id| id.to_string());
    let data = Data::of(&record.event);
    let written = match format {
        ExportFormat::JsonLines => serde_json::to_writer(
            &mut *out,
            &JsonLine {
                position: record.position,
                stream: &stream,
                conversation_id: conversation_id.as_deref(),
                seq: record.seq,
                recorded_at: &recorded_at,
                event_type: record.event.type_name(),
                data,
                tenant,
            },
        ),
        ExportFormat::CloudEvents => serde_json::to_writer(
            &mut *out,
            &CloudEvent {
                specversion: "1.0",
                id: format!("{stream}/{}", record.seq),
                source: format!("{CLOUDEVENTS_SOURCE_PREFIX}{}", percent_encode(&stream)),
                event_type: format!("{CLOUDEVENTS_TYPE_PREFIX}{}", record.event.type_name()),
                time: &recorded_at,
                subject: conversation_id.as_deref(),
                datacontenttype: "application/json",
                data,
                position: record.position.to_string(),
                stream: &stream,
                seq: record.seq.to_string(),
                tenant,
            },
        ),
    };
    // Keep the I/O error as it is, so the caller can tell a closed pipe from a failure.
    written.map_err(|error| match error.io_error_kind() {
        Some(_) => AuditError::Write(io::Error::from(error)),
        None => AuditError::Json(error),
    })?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so an AI agent id with
/// spaces or slashes still makes one path segment of a valid URI reference.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A JSON Lines line. Field order is the documented order.
#[derive(Serialize)]
struct JsonLine<'a> {
    position: u64,
    stream: &'a str,
    conversation_id: Option<&'a str>,
    seq: u64,
    recorded_at: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    data: Data<'a>,
    tenant: Option<&'a str>,
}

/// A CloudEvents 1.0 event in structured mode. `position` and `seq` are extension attributes
/// of type String (decimal digits): the CloudEvents Integer type stops at 2^31 - 1.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    datacontenttype: &'static str,
    data: Data<'a>,
    position: String,
    stream: &'a str,
    seq: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
}

/// `{"kind": "customer" | "human" | "ai", "id": ...}`.
#[derive(Serialize)]
struct AuthorData<'a> {
    kind: &'static str,
    id: &'a str,
}

impl<'a> AuthorData<'a> {
    fn of(author: &'a Author) -> AuthorData<'a> {
        AuthorData {
            kind: author.kind(),
            id: author.id(),
        }
    }
}

/// `{"name", "input", "outcome": {"status": "succeeded" | "failed", "detail"}}`.
#[derive(Serialize)]
struct SkillData<'a> {
    name: &'a str,
    input: &'a str,
    outcome: OutcomeData<'a>,
}

#[derive(Serialize)]
struct OutcomeData<'a> {
    status: &'static str,
    detail: &'a str,
}

/// The `data` object of each event type. Untagged: the line's `type` says which it is.
#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    /// An event newer than this version of the export: `{}`.
    Other {},
    AiAgentRegistered {
        agent_id: &'a str,
        name: &'a str,
        specialties: Vec<&'a str>,
        tenant: &'a str,
    },
    AiAgentStatus {
        agent_id: &'a str,
    },
    ConversationOpened {
        customer_id: &'a str,
        channel: &'a str,
        human_id: Option<&'a str>,
        tenant: &'a str,
        team: Option<&'a str>,
        language: Option<&'a str>,
        at: Option<String>,
    },
    MessagePosted {
        author: AuthorData<'a>,
        text: &'a str,
        concerns: Vec<&'static str>,
        by: AuthorData<'a>,
        visible_to_customer: bool,
    },
    HandedOffToAi {
        agent_id: &'a str,
        agent_name: &'a str,
        by_human: &'a str,
        reason: Option<&'a str>,
        by: AuthorData<'a>,
    },
    AiActionRecorded {
        agent_id: &'a str,
        skill: SkillData<'a>,
        by: AuthorData<'a>,
    },
    AiSkillStarted {
        agent_id: &'a str,
        skill: StartedSkillData<'a>,
        by: AuthorData<'a>,
    },
    Reclaimed {
        agent_id: &'a str,
        by_human: &'a str,
        reason: Option<&'a str>,
        by: AuthorData<'a>,
    },
    EscalatedToHuman {
        agent_id: &'a str,
        reason: &'a str,
        cause: &'static str,
        by: AuthorData<'a>,
    },
    EscalatedByRule {
        agent_id: &'a str,
        reason: &'a str,
        cause: &'static str,
        by: AuthorData<'a>,
        rule: &'a str,
        policy_version: &'a str,
        at: Option<String>,
    },
    AiCouldNotAnswer {
        agent_id: &'a str,
        reason: Option<&'a str>,
        by: AuthorData<'a>,
        at: Option<String>,
    },
    PolicyOverridden {
        by: AuthorData<'a>,
        rule: &'a str,
        policy_version: &'a str,
        refusal: &'a str,
        at: Option<String>,
    },
    SkillApprovalRequested {
        agent_id: &'a str,
        skill: &'a str,
        input: &'a str,
        rule: &'a str,
        policy_version: &'a str,
        deadline_ms: u64,
        by: AuthorData<'a>,
        at: Option<String>,
    },
    SkillApproved {
        agent_id: &'a str,
        skill: &'a str,
        by: AuthorData<'a>,
        rule: &'a str,
        policy_version: &'a str,
        at: Option<String>,
    },
    SkillDenied {
        agent_id: &'a str,
        skill: &'a str,
        by: AuthorData<'a>,
        reason: &'a str,
        rule: &'a str,
        policy_version: &'a str,
        at: Option<String>,
    },
    ContextShared {
        by: AuthorData<'a>,
        summary: Option<&'a str>,
        topic: Option<&'a str>,
        variables: VariablesData<'a>,
        at: Option<String>,
    },
    ConversationClosed {
        by: AuthorData<'a>,
        reason: Option<&'a str>,
    },
    HumanRegistered {
        human_id: &'a str,
        tenant: &'a str,
        name: &'a str,
        role: &'static str,
        teams: Vec<&'a str>,
        capacity: u32,
    },
    HumanPresenceChanged {
        human_id: &'a str,
        presence: &'static str,
    },
    HumanRemoved {
        human_id: &'a str,
    },
    AwaitingHuman {
        team: Option<&'a str>,
        cause: &'static str,
        since: Option<String>,
    },
    HumanAssigned {
        human_id: &'a str,
        name: &'a str,
        team: Option<&'a str>,
        by: AuthorData<'a>,
        at: Option<String>,
    },
    Transferred {
        to_human: Option<&'a str>,
        to_team: Option<&'a str>,
        reason: &'a str,
        by: AuthorData<'a>,
        at: Option<String>,
    },
    Sla {
        team: Option<&'a str>,
        waited_ms: u64,
        threshold_ms: u64,
        at: Option<String>,
        by: AuthorData<'a>,
    },
    AiReplyOverdue {
        agent_id: &'a str,
        waited_ms: u64,
        deadline_ms: u64,
        at: Option<String>,
        by: AuthorData<'a>,
    },
    CustomerNotice {
        kind: &'static str,
        text: &'a str,
        language: &'a str,
        visible_to_customer: bool,
    },
    InternalNote {
        to: &'static str,
        text: &'a str,
        by: AuthorData<'a>,
        at: Option<String>,
        visible_to_customer: bool,
    },
    Flag {
        by: AuthorData<'a>,
        at: Option<String>,
    },
}

/// A context's variables as one JSON object, in the context's order.
struct VariablesData<'a>(&'a [(VariableName, VariableValue)]);

impl Serialize for VariablesData<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name.as_str(), value.as_str())?;
        }
        map.end()
    }
}

/// The author of an escalation: the clock for a timeout, the backend for a deactivation, the
/// AI agent otherwise.
fn escalation_by(agent_id: &AiAgentId, cause: EscalationCause) -> AuthorData<'_> {
    match cause {
        EscalationCause::AiTimeout => system(SystemActor::Clock),
        EscalationCause::AgentDeactivated => system(SystemActor::Backend),
        _ => ai_by(agent_id),
    }
}

/// `{"kind": "system", "id": ...}` for a part of the runtime.
fn system(actor: SystemActor) -> AuthorData<'static> {
    AuthorData {
        kind: "system",
        id: actor.as_str(),
    }
}

fn ai_by(id: &AiAgentId) -> AuthorData<'_> {
    AuthorData {
        kind: "ai",
        id: id.as_str(),
    }
}

/// A skill about to run: its name and input (its outcome follows in `ai_action_recorded`).
#[derive(Serialize)]
struct StartedSkillData<'a> {
    name: &'a str,
    input: &'a str,
}

fn human_by(id: &HumanId) -> AuthorData<'_> {
    AuthorData {
        kind: "human",
        id: id.as_str(),
    }
}

/// A time the rules recorded, in RFC 3339 like `recorded_at`; `None` (null) outside the years
/// 0000 to 9999, which no clock yields.
fn time(at: Timestamp) -> Option<String> {
    format_recorded_at(RecordedAt(at.as_micros()))
}

impl<'a> Data<'a> {
    fn of(event: &'a Event) -> Data<'a> {
        match event {
            Event::AiAgent(AiAgentEvent::Registered {
                agent_id,
                name,
                specialties,
            }) => Data::AiAgentRegistered {
                agent_id: agent_id.as_str(),
                name: name.as_str(),
                specialties: specialties.iter().map(|s| s.as_str()).collect(),
                tenant: DEFAULT_TENANT,
            },
            Event::AiAgent(AiAgentEvent::RegisteredIn {
                agent_id,
                tenant,
                name,
                specialties,
            }) => Data::AiAgentRegistered {
                agent_id: agent_id.as_str(),
                name: name.as_str(),
                specialties: specialties.iter().map(|s| s.as_str()).collect(),
                tenant: tenant.as_str(),
            },
            Event::AiAgent(
                AiAgentEvent::Activated { agent_id } | AiAgentEvent::Deactivated { agent_id },
            ) => Data::AiAgentStatus {
                agent_id: agent_id.as_str(),
            },
            Event::Conversation(event) => Data::of_conversation(event),
            Event::Human(HumanEvent::Registered {
                human_id,
                tenant,
                name,
                role,
                teams,
                capacity,
            }) => Data::HumanRegistered {
                human_id: human_id.as_str(),
                tenant: tenant.as_str(),
                name: name.as_str(),
                role: role.as_str(),
                teams: teams.iter().map(|t| t.as_str()).collect(),
                capacity: *capacity,
            },
            Event::Human(HumanEvent::PresenceChanged { human_id, presence }) => {
                Data::HumanPresenceChanged {
                    human_id: human_id.as_str(),
                    presence: presence.as_str(),
                }
            }
            Event::Human(HumanEvent::Removed { human_id }) => Data::HumanRemoved {
                human_id: human_id.as_str(),
            },
            // A kind of event this version does not know: its type, no data fields.
            _ => Data::Other {},
        }
    }

    fn of_conversation(event: &'a ConversationEvent) -> Data<'a> {
        match event {
            ConversationEvent::Opened {
                customer,
                channel,
                human,
            } => Data::ConversationOpened {
                customer_id: customer.as_str(),
                channel: channel.as_str(),
                human_id: human.as_ref().map(|h| h.as_str()),
                tenant: DEFAULT_TENANT,
                team: None,
                language: None,
                at: None,
            },
            ConversationEvent::Started {
                tenant,
                customer,
                channel,
                team,
                language,
                at,
            } => Data::ConversationOpened {
                customer_id: customer.as_str(),
                channel: channel.as_str(),
                human_id: None,
                tenant: tenant.as_str(),
                team: team.as_ref().map(|t| t.as_str()),
                language: language.as_ref().map(|l| l.as_str()),
                at: time(*at),
            },
            ConversationEvent::MessagePosted {
                author,
                text,
                concerns,
            } => Data::MessagePosted {
                author: AuthorData::of(author),
                text: text.as_str(),
                concerns: concerns.iter().map(|c| c.as_str()).collect(),
                by: AuthorData::of(author),
                visible_to_customer: true,
            },
            ConversationEvent::HandedOffToAi {
                agent_id,
                agent_name,
                by_human,
                reason,
            } => Data::HandedOffToAi {
                agent_id: agent_id.as_str(),
                agent_name: agent_name.as_str(),
                by_human: by_human.as_str(),
                reason: reason.as_ref().map(|r| r.as_str()),
                by: human_by(by_human),
            },
            ConversationEvent::AiActionRecorded { agent_id, skill } => {
                let (status, detail) = match &skill.outcome {
                    SkillOutcome::Succeeded(detail) => ("succeeded", detail),
                    SkillOutcome::Failed(detail) => ("failed", detail),
                };
                Data::AiActionRecorded {
                    agent_id: agent_id.as_str(),
                    skill: SkillData {
                        name: skill.name.as_str(),
                        input: skill.input.as_str(),
                        outcome: OutcomeData {
                            status,
                            detail: detail.as_str(),
                        },
                    },
                    by: ai_by(agent_id),
                }
            }
            ConversationEvent::AiSkillStarted {
                agent_id,
                name,
                input,
            } => Data::AiSkillStarted {
                agent_id: agent_id.as_str(),
                skill: StartedSkillData {
                    name: name.as_str(),
                    input: input.as_str(),
                },
                by: ai_by(agent_id),
            },
            ConversationEvent::Reclaimed {
                agent_id,
                by_human,
                reason,
            } => Data::Reclaimed {
                agent_id: agent_id.as_str(),
                by_human: by_human.as_str(),
                reason: reason.as_ref().map(|r| r.as_str()),
                by: human_by(by_human),
            },
            ConversationEvent::EscalatedToHuman {
                agent_id,
                reason,
                cause,
            } => Data::EscalatedToHuman {
                agent_id: agent_id.as_str(),
                reason: reason.as_str(),
                cause: cause.as_str(),
                by: escalation_by(agent_id, *cause),
            },
            ConversationEvent::EscalatedByRule {
                agent_id,
                reason,
                cause,
                rule,
                policy_version,
                at,
            } => Data::EscalatedByRule {
                agent_id: agent_id.as_str(),
                reason: reason.as_str(),
                cause: cause.as_str(),
                by: escalation_by(agent_id, *cause),
                rule: rule.as_str(),
                policy_version: policy_version.as_str(),
                at: time(*at),
            },
            ConversationEvent::AiCouldNotAnswer {
                agent_id,
                reason,
                at,
            } => Data::AiCouldNotAnswer {
                agent_id: agent_id.as_str(),
                reason: reason.as_ref().map(|r| r.as_str()),
                by: ai_by(agent_id),
                at: time(*at),
            },
            ConversationEvent::PolicyOverridden {
                by,
                rule,
                policy_version,
                refusal,
                at,
            } => Data::PolicyOverridden {
                by: human_by(by),
                rule: rule.as_str(),
                policy_version: policy_version.as_str(),
                refusal: refusal.as_str(),
                at: time(*at),
            },
            ConversationEvent::SkillApprovalRequested {
                agent_id,
                name,
                input,
                rule,
                policy_version,
                deadline_ms,
                at,
            } => Data::SkillApprovalRequested {
                agent_id: agent_id.as_str(),
                skill: name.as_str(),
                input: input.as_str(),
                rule: rule.as_str(),
                policy_version: policy_version.as_str(),
                deadline_ms: *deadline_ms,
                by: ai_by(agent_id),
                at: time(*at),
            },
            ConversationEvent::SkillApproved {
                agent_id,
                name,
                by,
                rule,
                policy_version,
                at,
            } => Data::SkillApproved {
                agent_id: agent_id.as_str(),
                skill: name.as_str(),
                by: AuthorData::of(by),
                rule: rule.as_str(),
                policy_version: policy_version.as_str(),
                at: time(*at),
            },
            ConversationEvent::SkillDenied {
                agent_id,
                name,
                by,
                reason,
                rule,
                policy_version,
                at,
            } => Data::SkillDenied {
                agent_id: agent_id.as_str(),
                skill: name.as_str(),
                by: AuthorData::of(by),
                reason: reason.as_str(),
                rule: rule.as_str(),
                policy_version: policy_version.as_str(),
                at: time(*at),
            },
            ConversationEvent::ContextShared { by, context, at } => Data::ContextShared {
                by: AuthorData::of(by),
                summary: context.summary().map(|s| s.as_str()),
                topic: context.topic().map(|t| t.as_str()),
                variables: VariablesData(context.variables()),
                at: time(*at),
            },
            ConversationEvent::Closed { by, reason } => Data::ConversationClosed {
                by: AuthorData::of(by),
                reason: reason.as_ref().map(|r| r.as_str()),
            },
            ConversationEvent::AwaitingHuman { team, cause, since } => Data::AwaitingHuman {
                team: team.as_ref().map(|t| t.as_str()),
                cause: cause.as_str(),
                since: time(*since),
            },
            ConversationEvent::HumanAssigned {
                human_id,
                name,
                team,
                by,
                at,
            } => Data::HumanAssigned {
                human_id: human_id.as_str(),
                name: name.as_str(),
                team: team.as_ref().map(|t| t.as_str()),
                by: AuthorData::of(by),
                at: time(*at),
            },
            ConversationEvent::Transferred { to, reason, by, at } => {
                let (to_human, to_team) = match to {
                    TransferTarget::Human(human) => (Some(human.as_str()), None),
                    TransferTarget::Team(team) => (None, Some(team.as_str())),
                    _ => (None, None),
                };
                Data::Transferred {
                    to_human,
                    to_team,
                    reason: reason.as_str(),
                    by: AuthorData::of(by),
                    at: time(*at),
                }
            }
            ConversationEvent::SlaWarning {
                team,
                waited_ms,
                threshold_ms,
                at,
            }
            | ConversationEvent::SlaBreached {
                team,
                waited_ms,
                threshold_ms,
                at,
            } => Data::Sla {
                team: team.as_ref().map(|t| t.as_str()),
                waited_ms: *waited_ms,
                threshold_ms: *threshold_ms,
                at: time(*at),
                by: system(SystemActor::Clock),
            },
            ConversationEvent::AiReplyOverdue {
                agent_id,
                waited_ms,
                deadline_ms,
                at,
            } => Data::AiReplyOverdue {
                agent_id: agent_id.as_str(),
                waited_ms: *waited_ms,
                deadline_ms: *deadline_ms,
                at: time(*at),
                by: system(SystemActor::Clock),
            },
            ConversationEvent::CustomerNotice {
                kind,
                text,
                language,
            } => Data::CustomerNotice {
                kind: kind.as_str(),
                text: text.as_str(),
                language: language.as_str(),
                visible_to_customer: true,
            },
            ConversationEvent::InternalNote { to, text, by, at } => Data::InternalNote {
                to: to.as_str(),
                text: text.as_str(),
                by: AuthorData::of(by),
                at: time(*at),
                visible_to_customer: false,
            },
            ConversationEvent::FlagRaised { by, at }
            | ConversationEvent::FlagLowered { by, at } => Data::Flag {
                by: AuthorData::of(by),
                at: time(*at),
            },
            _ => Data::Other {},
        }
    }
}

/// The tenant of a log written before tenants.
const DEFAULT_TENANT: &str = "default";

/// The tenant an event names, if it names one: a conversation's opening, an AI agent's or a
/// human's registration (those written before tenants name `default`).
fn tenant_named(event: &Event) -> Option<&str> {
    match event {
        Event::Conversation(ConversationEvent::Started { tenant, .. })
        | Event::AiAgent(AiAgentEvent::RegisteredIn { tenant, .. })
        | Event::Human(HumanEvent::Registered { tenant, .. }) => Some(tenant.as_str()),
        Event::Conversation(ConversationEvent::Opened { .. })
        | Event::AiAgent(AiAgentEvent::Registered { .. }) => Some(DEFAULT_TENANT),
        _ => None,
    }
}

/// Each stream's tenant, learnt from the stream's first event as the export goes.
#[derive(Default)]
struct Tenants {
    by_stream: HashMap<StreamId, String>,
}

impl Tenants {
    /// The tenant of `record`'s stream, learning it from `record` if it names one.
    fn of(&mut self, record: &RecordedEvent) -> Option<&str> {
        if let Some(tenant) = tenant_named(&record.event) {
            if !self.by_stream.contains_key(&record.stream) {
                self.by_stream
                    .insert(record.stream.clone(), tenant.to_owned());
            }
        }
        self.by_stream.get(&record.stream).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(
            percent_encode("ai-agent-faq_bot.v2~x"),
            "ai-agent-faq_bot.v2~x"
        );
        assert_eq!(percent_encode("ai-agent-a b/ç"), "ai-agent-a%20b%2F%C3%A7");
    }
}
