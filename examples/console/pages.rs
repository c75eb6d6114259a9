//! The console's HTML. Every value is inserted through `maud`, which escapes it: names,
//! messages and reasons are the customers' and staff's own text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use handover::{
    AgentName, AiAgentId, Author, ConversationEvent, ConversationView, Event, Handover, HumanId,
    HumanQuery, HumanView, LastAuthor, LiveConversation, LiveStatus, Presence, RecordedEvent, Role,
    SkillOutcome, Status, TenantId, TransferTarget,
};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use super::{live_query, percent_encode};

/// The live list's filters, as the list page's form sends them (`GET /?status=&team=&agent=`):
/// blank is "all".
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// A status label: `awaiting-human`, `ai-active`, `human-handled` or `closed`.
    pub status: Option<String>,
    /// A team id.
    pub team: Option<String>,
    /// `ai:AGENT_ID` or `human:HUMAN_ID`.
    pub agent: Option<String>,
    /// Non-blank: flagged conversations only.
    pub flagged: Option<String>,
}

impl ListFilter {
    /// The filter as a query string (`status=...&team=...`), blank fields left out.
    pub fn query_string(&self) -> String {
        [
            ("status", &self.status),
            ("team", &self.team),
            ("agent", &self.agent),
            ("flagged", &self.flagged),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref().filter(|v| !v.is_empty())?;
            Some(format!("{name}={}", percent_encode(value)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// `1:05`, or `1:02:05` past an hour.
fn elapsed(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The time of day (UTC) of a time in microseconds since the epoch.
fn time_of_day(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The end of a conversation id: the start of a UUID v7 is its time, the same for all
/// conversations opened around then.
fn short_id(id: &handover::ConversationId) -> String {
    let text = id.to_string();
    text[text.len().saturating_sub(8)..].to_owned()
}

/// The console's icons, drawn once per page ([`ICONS`]) and used by reference, so that they
/// show the same everywhere, with or without an emoji font.
#[derive(Clone, Copy)]
enum Icon {
    Robot,
    Hourglass,
    Person,
    Flag,
    Lock,
}

fn icon(icon: Icon) -> Markup {
    let name = match icon {
        Icon::Robot => "robot",
        Icon::Hourglass => "hourglass",
        Icon::Person => "person",
        Icon::Flag => "flag",
        Icon::Lock => "lock",
    };
    // A fixed name from the list above: nothing of the caller's goes into this markup.
    PreEscaped(format!(
        r##"<svg class="icon icon-{name}" aria-hidden="true" focusable="false"><use href="#i-{name}"/></svg>"##
    ))
}

/// The icons' drawings, in each page once.
const ICONS: &str = r##"<svg width="0" height="0" style="position:absolute" aria-hidden="true" focusable="false">
<symbol id="i-robot" viewBox="0 0 24 24"><rect x="11" y="1.5" width="2" height="4" fill="currentColor"/><circle cx="12" cy="2" r="1.6" fill="currentColor"/><rect x="4" y="6" width="16" height="13" rx="3" fill="currentColor"/><circle cx="9" cy="11.5" r="1.8" fill="#fff"/><circle cx="15" cy="11.5" r="1.8" fill="#fff"/><rect x="8.5" y="15" width="7" height="1.6" rx=".8" fill="#fff"/><rect x="1.5" y="10" width="2" height="5" rx="1" fill="currentColor"/><rect x="20.5" y="10" width="2" height="5" rx="1" fill="currentColor"/></symbol>
<symbol id="i-hourglass" viewBox="0 0 24 24"><path fill="currentColor" d="M6 2h12v2h-1v3.5a5 5 0 0 1-2.6 4.4l-.9.6.9.5A5 5 0 0 1 17 17.5V20h1v2H6v-2h1v-2.5a5 5 0 0 1 2.6-4.4l.9-.6-.9-.5A5 5 0 0 1 7 7.5V4H6zm3 2v3.5c0 1 .5 1.9 1.4 2.4L12 11l1.6-1.1c.9-.5 1.4-1.4 1.4-2.4V4zm3 9.4-1.4.9A3 3 0 0 0 9 17.5V20h6v-2.5a3 3 0 0 0-1.6-2.7z"/><path fill="currentColor" d="M10 19h4l-2-3z"/></symbol>
<symbol id="i-person" viewBox="0 0 24 24"><circle cx="12" cy="8" r="4.2" fill="currentColor"/><path fill="currentColor" d="M3.5 21.5a8.5 8.5 0 0 1 17 0z"/></symbol>
<symbol id="i-flag" viewBox="0 0 24 24"><path fill="currentColor" d="M5 2h2v20H5zm3 1h12l-3.2 4.5L20 12H8z"/></symbol>
<symbol id="i-lock" viewBox="0 0 24 24"><path fill="currentColor" d="M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V11a1 1 0 0 1 1-1zm2 0h6V7a3 3 0 0 0-6 0z"/></symbol>
</svg>"##;

const STYLESHEET: &str = "/assets/console.css";
const SCRIPT: &str = "/assets/console.js";

/// A whole page: the header with the signed-in supervisor, and `body`.
fn layout(title: &str, supervisor: Option<&HumanView>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Handover console" }
                link rel="stylesheet" href=(STYLESHEET);
                script src=(SCRIPT) defer {}
            }
            body {
                (PreEscaped(ICONS))
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Handover console" }
                    @if let Some(supervisor) = supervisor {
                        div.who {
                            span #signed-in-as {
                                "Signed in as " strong { (supervisor.name) }
                                " (" (supervisor.tenant) ")"
                            }
                            form method="post" action="/sign-out" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The controller badge: robot and agent name, hourglass and wait, the human's name.
fn badge(conversation: &LiveConversation) -> Markup {
    match conversation.status {
        LiveStatus::AiActive => {
            let name = conversation
                .ai_agent
                .as_ref()
                .map_or(String::new(), |(_, name)| name.to_string());
            html! {
                span.badge.badge-ai data-badge="ai" title="An AI agent handles it" {
                    (icon(Icon::Robot)) span.visually-hidden { "AI agent " }
                    span.name { (name) }
                }
            }
        }
        LiveStatus::AwaitingHuman => {
            let wait = elapsed(conversation.wait.unwrap_or_default());
            let cause = conversation.waiting.map_or("", |(_, cause)| cause.as_str());
            html! {
                span.badge.badge-wait data-badge="wait" title=(format!("Waiting for a human ({cause})")) {
                    (icon(Icon::Hourglass)) span.visually-hidden { "Waiting " }
                    span.wait-time { (wait) }
                }
            }
        }
        LiveStatus::HumanHandled => {
            let name = match (&conversation.human_name, &conversation.human) {
                (Some(name), _) => name.to_string(),
                (None, Some(id)) => id.to_string(),
                (None, None) => "a human".to_owned(),
            };
            html! {
                span.badge.badge-human data-badge="human" title="A human handles it" {
                    (icon(Icon::Person))
                    span.name { (name) }
                }
            }
        }
        _ => html! { span.badge.badge-closed data-badge="closed" { "Closed" } },
    }
}

fn last_author(author: &LastAuthor, names: &Names<'_>) -> String {
    match author {
        LastAuthor::Customer => "Customer".to_owned(),
        LastAuthor::Ai(agent) => format!("{} (AI)", names.ai(agent)),
        LastAuthor::Human(human) => names.human(human),
        _ => "Notice".to_owned(),
    }
}

/// The live list's fragment: the strip of counts and the conversations the filter admits, the
/// longest wait first. This is what the list page shows and what its live stream sends.
///
/// ```no_run
/// # fn example(handover: &handover::Handover) {
/// use handover_examples::console::{render_list, ListFilter};
/// let html = render_list(handover, &handover::TenantId::default_tenant(), &ListFilter::default(), 200);
/// assert!(html.into_string().contains("Waiting"));
/// # }
/// ```
pub fn render_list(
    handover: &Handover,
    tenant: &TenantId,
    filter: &ListFilter,
    limit: usize,
) -> Markup {
    let counts = handover.conversation_counts(tenant);
    let available = handover
        .humans(tenant, &HumanQuery::default().presence(Presence::Available))
        .into_iter()
        .filter(|h| h.role == Role::Agent)
        .count();
    let list = handover.list_conversations(tenant, &live_query(filter));
    let names = Names::of(handover);
    let total = list.len();
    html! {
        section aria-label="Now" {
            dl.strip {
                div { dt { "Waiting" } dd #count-waiting { (counts.awaiting_human) } }
                div { dt { "Longest wait" } dd #longest-wait { (icon(Icon::Hourglass)) " " (elapsed(counts.longest_wait)) } }
                div { dt { "AI active" } dd #count-ai { (icon(Icon::Robot)) " " (counts.ai_active) } }
                div { dt { "Human-handled" } dd #count-human { (counts.human_handled) } }
                div { dt { "Humans available" } dd #count-available { (available) } }
            }
            @if !counts.queues.is_empty() {
                ul.queues aria-label="Queues" {
                    @for queue in &counts.queues {
                        li {
                            strong { (queue.team.as_ref().map_or("General queue".to_owned(), |t| t.to_string())) }
                            ": " (queue.waiting) " waiting, longest " (icon(Icon::Hourglass)) " " (elapsed(queue.longest_wait))
                        }
                    }
                }
            }
        }
        p.count.muted #list-count {
            @if total > limit { "Showing the first " (limit) " of " (total) " conversations" }
            @else { (total) " conversations" }
        }
        @if list.is_empty() {
            p { "No conversation matches." }
        } @else {
            ul.convs #conversations {
                @for conversation in list.iter().take(limit) {
                    @let id = conversation.id.to_string();
                    li class=(format!("conv status-{}", conversation.status.label()))
                        data-conversation=(id) data-status=(conversation.status.label()) {
                        div.badge-cell { (badge(conversation)) }
                        div.what {
                            a id=(format!("open-{id}")) href=(format!("/c/{id}")) {
                                (conversation.customer.as_str()) " · …" (short_id(&conversation.id))
                            }
                            @if let Some(last) = &conversation.last_message {
                                div.last {
                                    span.author { (last_author(&last.author, &names)) ": " }
                                    span.text { (last.text) @if last.cut { "…" } }
                                }
                            }
                        }
                        div.team { (conversation.team.as_ref().map_or("—".to_owned(), |t| t.to_string())) }
                        div.flag-cell {
                            @if conversation.flagged {
                                span.flag data-flag="raised" title="Needs help" { (icon(Icon::Flag)) " Flagged" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every team the tenant has: its humans' and its queues'.
fn teams(handover: &Handover, tenant: &TenantId) -> BTreeSet<String> {
    let mut teams: BTreeSet<String> = handover
        .humans(tenant, &HumanQuery::default())
        .into_iter()
        .flat_map(|h| h.teams.into_iter().map(|t| t.to_string()))
        .collect();
    for queue in handover.conversation_counts(tenant).queues {
        if let Some(team) = queue.team {
            teams.insert(team.to_string());
        }
    }
    teams
}

/// The list page: filters, then the live fragment.
pub(super) fn list_page(
    handover: &Handover,
    supervisor: &HumanView,
    filter: &ListFilter,
    fragment: Markup,
) -> Markup {
    let tenant = &supervisor.tenant;
    let chosen = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let agents: Vec<_> = handover
        .ai_agents()
        .into_iter()
        .filter(|a| a.tenant == *tenant)
        .collect();
    let humans = handover.humans(tenant, &HumanQuery::default());
    let query = filter.query_string();
    let live = if query.is_empty() {
        "/events/list".to_owned()
    } else {
        format!("/events/list?{query}")
    };
    let body = html! {
        h1 { "Conversations" }
        form.filters method="get" action="/" aria-label="Filters" {
            div {
                label for="filter-status" { "Status" }
                select #filter-status name="status" {
                    option value="" { "All" }
                    @for status in LiveStatus::ALL {
                        option value=(status.label()) selected[chosen(&filter.status, status.label())] {
                            (status_name(status))
                        }
                    }
                }
            }
            div {
                label for="filter-team" { "Team" }
                select #filter-team name="team" {
                    option value="" { "All" }
                    @for team in teams(handover, tenant) {
                        option value=(team) selected[chosen(&filter.team, &team)] { (team) }
                    }
                }
            }
            div {
                label for="filter-agent" { "Agent" }
                select #filter-agent name="agent" {
                    option value="" { "Anyone" }
                    optgroup label="AI agents" {
                        @for agent in &agents {
                            @let value = format!("ai:{}", agent.profile.id);
                            option value=(value) selected[chosen(&filter.agent, &value)] {
                                (agent.profile.name)
                            }
                        }
                    }
                    optgroup label="Humans" {
                        @for human in &humans {
                            @let value = format!("human:{}", human.id);
                            option value=(value) selected[chosen(&filter.agent, &value)] {
                                (human.name)
                            }
                        }
                    }
                }
            }
            div {
                label for="filter-flagged" {
                    input #filter-flagged type="checkbox" name="flagged" value="1"
                        checked[filter.flagged.as_deref().is_some_and(|f| !f.is_empty())];
                    " Flagged only"
                }
            }
            div.row {
                button.primary type="submit" { "Apply" }
                a href="/" { "Clear" }
            }
        }
        div #live data-live-list=(live) data-swappable { (fragment) }
    };
    layout("Conversations", Some(supervisor), body)
}

fn status_name(status: LiveStatus) -> &'static str {
    match status {
        LiveStatus::AiActive => "AI active",
        LiveStatus::AwaitingHuman => "Waiting for a human",
        LiveStatus::HumanHandled => "Human-handled",
        _ => "Closed recently",
    }
}

/// Display names of AI agents and humans, for the transcript's labels.
pub(super) struct Names<'a> {
    handover: &'a Handover,
    ai: HashMap<AiAgentId, AgentName>,
}

impl<'a> Names<'a> {
    pub(super) fn of(handover: &'a Handover) -> Names<'a> {
        Names {
            handover,
            ai: handover
                .ai_agents()
                .into_iter()
                .map(|a| (a.profile.id, a.profile.name))
                .collect(),
        }
    }

    fn ai(&self, id: &AiAgentId) -> String {
        self.ai
            .get(id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }

    fn human(&self, id: &HumanId) -> String {
        self.handover
            .human(id)
            .map_or_else(|| id.to_string(), |h| h.name.to_string())
    }

    fn author(&self, author: &Author) -> String {
        match author {
            Author::Customer(id) => format!("Customer {id}"),
            Author::Human(id) => self.human(id),
            Author::Ai(id) => format!("{} (AI)", self.ai(id)),
            Author::System(actor) => format!("the {}", actor.as_str()),
            _ => "someone".to_owned(),
        }
    }
}

/// One event of the transcript, labelled and styled by what it is.
pub(super) fn transcript_entry(names: &Names<'_>, record: &RecordedEvent) -> Markup {
    let id = format!("ev-{}", record.seq);
    let time = time_of_day(record.recorded_at.0);
    let Event::Conversation(event) = &record.event else {
        return html! { li id=(id) .entry-event { (record.event.type_name()) } };
    };
    let because = |reason: &Option<handover::Reason>| match reason {
        Some(reason) => format!(" — reason: {reason}"),
        None => String::new(),
    };
    let queue = |team: &Option<handover::TeamId>| match team {
        Some(team) => format!("the {team} queue"),
        None => "the general queue".to_owned(),
    };
    let (class, body): (&str, Markup) = match event {
        ConversationEvent::MessagePosted { author, text, .. } => {
            let (class, who) = match author {
                Author::Customer(id) => ("entry-customer", format!("Customer ({id})")),
                Author::Ai(agent) => ("entry-ai", format!("{} (AI)", names.ai(agent))),
                Author::Human(human) => ("entry-human", format!("{} (human)", names.human(human))),
                other => ("entry-event", names.author(other)),
            };
            (class, html! { div.who { (who) } div.msg { (text) } })
        }
        ConversationEvent::Opened {
            customer,
            channel,
            human,
        } => (
            "entry-event",
            html! {
                "Opened for customer " (customer) " on " (channel)
                @if let Some(human) = human { ", assigned to " (names.human(human)) }
            },
        ),
        ConversationEvent::Started {
            customer,
            channel,
            team,
            language,
            ..
        } => (
            "entry-event",
            html! {
                "Opened for customer " (customer) " on " (channel)
                @if let Some(team) = team { ", team " (team) }
                @if let Some(language) = language { ", language " (language) }
            },
        ),
        ConversationEvent::HandedOffToAi {
            agent_name,
            by_human,
            reason,
            ..
        } => (
            "entry-escalation entry-handoff",
            html! {
                strong { "Handed off to " (icon(Icon::Robot)) " " (agent_name) } " by " (names.human(by_human)) (because(reason))
            },
        ),
        ConversationEvent::Reclaimed {
            agent_id,
            by_human,
            reason,
        } => (
            "entry-escalation",
            html! {
                strong { "Assumed by " (names.human(by_human)) } " from " (icon(Icon::Robot)) " " (names.ai(agent_id)) (because(reason))
            },
        ),
        ConversationEvent::EscalatedToHuman {
            agent_id,
            reason,
            cause,
        } => (
            "entry-escalation",
            html! {
                strong { "Escalated to humans" } " from " (icon(Icon::Robot)) " " (names.ai(agent_id)) ": " (reason)
                " (cause: " (cause.as_str()) ")"
            },
        ),
        ConversationEvent::EscalatedByRule {
            agent_id,
            reason,
            cause,
            rule,
            ..
        } => (
            "entry-escalation",
            html! {
                strong { "Escalated to humans by rule " code { (rule) } } " from " (icon(Icon::Robot)) " " (names.ai(agent_id))
                ": " (reason) " (cause: " (cause.as_str()) ")"
            },
        ),
        ConversationEvent::AiActionRecorded { agent_id, skill } => (
            "entry-skill",
            html! {
                (icon(Icon::Robot)) " " (names.ai(agent_id)) " ran skill " code { (skill.name) }
                " with input " code { (skill.input.as_str()) }
                @match &skill.outcome {
                    SkillOutcome::Succeeded(result) => { " → succeeded: " code { (result.as_str()) } }
                    SkillOutcome::Failed(error) => { " → failed: " code { (error.as_str()) } }
                }
            },
        ),
        ConversationEvent::AiSkillStarted {
            agent_id,
            name,
            input,
        } => (
            "entry-skill",
            html! {
                (icon(Icon::Robot)) " " (names.ai(agent_id)) " starts skill " code { (name) } " with input " code { (input.as_str()) }
            },
        ),
        ConversationEvent::SkillApprovalRequested {
            agent_id,
            name,
            input,
            rule,
            deadline_ms,
            ..
        } => (
            "entry-skill",
            html! {
                strong { "Waits for approval: " } (icon(Icon::Robot)) " " (names.ai(agent_id)) " asks to run " code { (name) }
                " with input " code { (input.as_str()) } " (rule " code { (rule) } ", denied after "
                (elapsed(Duration::from_millis(*deadline_ms))) " without a decision)"
            },
        ),
        ConversationEvent::SkillApproved { name, by, .. } => (
            "entry-skill",
            html! {
                "Skill " code { (name) } " approved by " (names.author(by))
            },
        ),
        ConversationEvent::SkillDenied {
            name, by, reason, ..
        } => (
            "entry-skill",
            html! {
                "Skill " code { (name) } " denied by " (names.author(by)) ": " (reason)
            },
        ),
        ConversationEvent::AwaitingHuman { team, cause, .. } => (
            "entry-event",
            html! {
                (icon(Icon::Hourglass)) " Waits in " (queue(team)) " (" (cause.as_str()) ")"
            },
        ),
        ConversationEvent::HumanAssigned { human_id, by, .. } => (
            "entry-event",
            html! {
                "Assigned to " strong { (names.human(human_id)) } " by " (names.author(by))
            },
        ),
        ConversationEvent::Transferred { to, reason, by, .. } => {
            let to = match to {
                TransferTarget::Human(human) => names.human(human),
                TransferTarget::Team(team) => format!("the {team} queue"),
                _ => "elsewhere".to_owned(),
            };
            (
                "entry-event",
                html! { "Transferred to " strong { (to) } " by " (names.author(by)) " — reason: " (reason) },
            )
        }
        ConversationEvent::CustomerNotice { text, .. } => (
            "entry-notice",
            html! {
                div.who { "Notice shown to the customer" } div.msg { (text) }
            },
        ),
        ConversationEvent::InternalNote { to, text, by, .. } => (
            "entry-note",
            html! {
                div.who {
                    (icon(Icon::Lock)) " Internal note by " (names.author(by))
                    @if *to == handover::NoteAudience::Ai { " for the AI agent" }
                    " — never shown to the customer"
                }
                div.msg { (text) }
            },
        ),
        ConversationEvent::FlagRaised { by, .. } => (
            "entry-event",
            html! { span.flag { (icon(Icon::Flag)) " Flag raised" } " by " (names.author(by)) },
        ),
        ConversationEvent::FlagLowered { by, .. } => (
            "entry-event",
            html! { "Flag lowered by " (names.author(by)) },
        ),
        ConversationEvent::SlaWarning {
            team, waited_ms, ..
        } => (
            "entry-event",
            html! {
                "SLA warning: waited " (elapsed(Duration::from_millis(*waited_ms))) " in " (queue(team))
            },
        ),
        ConversationEvent::SlaBreached {
            team, waited_ms, ..
        } => (
            "entry-escalation",
            html! {
                "SLA breached: waited " (elapsed(Duration::from_millis(*waited_ms))) " in " (queue(team))
            },
        ),
        ConversationEvent::AiReplyOverdue {
            agent_id,
            waited_ms,
            ..
        } => (
            "entry-escalation",
            html! {
                (icon(Icon::Robot)) " " (names.ai(agent_id)) " did not answer within " (elapsed(Duration::from_millis(*waited_ms)))
            },
        ),
        ConversationEvent::AiCouldNotAnswer {
            agent_id, reason, ..
        } => (
            "entry-event",
            html! {
                (icon(Icon::Robot)) " " (names.ai(agent_id)) " could not answer" (because(reason))
            },
        ),
        ConversationEvent::PolicyOverridden {
            by, rule, refusal, ..
        } => (
            "entry-escalation",
            html! {
                (names.human(by)) " overrode rule " code { (rule) } ": " (refusal)
            },
        ),
        ConversationEvent::ContextShared { by, context, .. } => (
            "entry-event",
            html! {
                "Context from " (names.author(by)) ":"
                @if let Some(topic) = context.topic() { " topic " code { (topic) } }
                @if let Some(summary) = context.summary() { " — " (summary.as_str()) }
            },
        ),
        ConversationEvent::Closed { by, reason } => (
            "entry-escalation",
            html! {
                strong { "Closed" } " by " (names.author(by)) (because(reason))
            },
        ),
        other => (
            "entry-event",
            html! { (other.type_name().replace('_', " ")) },
        ),
    };
    html! {
        li id=(id) class=(class) data-type=(record.event.type_name()) {
            time { (time) }
            (body)
        }
    }
}

/// The conversation's header: who controls it and what it is.
pub(super) fn pane_head(handover: &Handover, view: &ConversationView) -> Markup {
    let names = Names::of(handover);
    let controller = match &view.status {
        Status::AiActive { agent_name, .. } => html! {
            span.badge.badge-ai data-badge="ai" {
                (icon(Icon::Robot)) " AI agent " span.name { (agent_name) }
            }
        },
        Status::Assigned { name, .. } => html! {
            span.badge.badge-human data-badge="human" { (icon(Icon::Person)) " " span.name { (name) } }
        },
        Status::Reclaimed { by } => html! {
            span.badge.badge-human data-badge="human" { (icon(Icon::Person)) " " span.name { (names.human(by)) } }
        },
        Status::AwaitingHuman { team, since, cause } => html! {
            span.badge.badge-wait data-badge="wait" {
                (icon(Icon::Hourglass)) " waiting since " (time_of_day(since.0)) " in "
                (team.as_ref().map_or("the general queue".to_owned(), |t| format!("the {t} queue")))
                " (" (cause.as_str()) ")"
            }
        },
        Status::Closed => html! { span.badge.badge-closed data-badge="closed" { "Closed" } },
        _ => {
            html! { span.badge.badge-human data-badge="human" { (icon(Icon::Person)) " " (view.human.as_ref().map_or("a human".to_owned(), |h| names.human(h))) } }
        }
    };
    html! {
        h1 { "Conversation with " (view.customer) }
        div #controller { (controller) }
        dl {
            div { dt { "Channel" } dd { (view.channel) } }
            div { dt { "Team" } dd #pane-team { (view.team.as_ref().map_or("—".to_owned(), |t| t.to_string())) } }
            @if let Some(language) = &view.language { div { dt { "Language" } dd { (language) } } }
            @if let Some(topic) = &view.topic { div { dt { "Topic" } dd { (topic) } } }
            div { dt { "Flag" } dd #pane-flag {
                @if view.flagged { span.flag data-flag="raised" { (icon(Icon::Flag)) " Flagged" } } @else { "—" }
            } }
            div { dt { "Messages" } dd { (view.messages) } }
            div { dt { "Handoffs to AI" } dd { (view.handoffs) } }
            div { dt { "Id" } dd { code { (view.id) } } }
        }
    }
}

/// Skills the AI agent waits to run: requested and not yet approved or denied.
fn pending_skills(history: &[Arc<RecordedEvent>]) -> Vec<(String, String, String)> {
    let mut pending: Vec<(String, String, String)> = Vec::new();
    for record in history {
        match &record.event {
            Event::Conversation(ConversationEvent::SkillApprovalRequested {
                name,
                input,
                rule,
                ..
            }) => pending.push((
                name.to_string(),
                input.as_str().to_owned(),
                rule.to_string(),
            )),
            Event::Conversation(
                ConversationEvent::SkillApproved { name, .. }
                | ConversationEvent::SkillDenied { name, .. },
            ) => {
                if let Some(at) = pending.iter().position(|(n, _, _)| *n == name.as_str()) {
                    pending.remove(at);
                }
            }
            _ => {}
        }
    }
    pending
}

/// The supervisor's actions on the conversation, as it stands.
pub(super) fn actions(
    handover: &Handover,
    supervisor: &HumanView,
    view: &ConversationView,
    history: &[Arc<RecordedEvent>],
) -> Markup {
    if view.closed {
        return html! { p { "Closed: no action is possible any more." } };
    }
    let base = format!("/c/{}", view.id);
    let ai_active = matches!(view.status, Status::AiActive { .. });
    let tenant = &supervisor.tenant;
    // The active agents only, grouped by what they are for.
    let mut by_specialty: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for agent in handover.active_ai_agents(None) {
        if agent.tenant != *tenant {
            continue;
        }
        let specialties: Vec<String> = agent
            .profile
            .specialties
            .iter()
            .map(|s| s.to_string())
            .collect();
        let group = if specialties.is_empty() {
            "general".to_owned()
        } else {
            specialties.join(", ")
        };
        by_specialty
            .entry(group)
            .or_default()
            .push((agent.profile.id.to_string(), agent.profile.name.to_string()));
    }
    let humans: Vec<HumanView> = handover
        .humans(tenant, &HumanQuery::default())
        .into_iter()
        .filter(|h| h.presence != Presence::Offline)
        .collect();
    let presence = |h: &HumanView| {
        format!(
            "{} — {}, {}/{}",
            h.name,
            h.presence.as_str(),
            h.load,
            h.capacity
        )
    };
    let pending = pending_skills(history);
    html! {
        @if !pending.is_empty() {
            @for (skill, input, rule) in &pending {
                form method="post" action=(format!("{base}/approve")) aria-label=(format!("Approve or deny {skill}")) {
                    h3 { "Skill waiting for approval" }
                    p { code { (skill) } " with input " code { (input) } " (rule " code { (rule) } ")" }
                    input type="hidden" name="skill" value=(skill);
                    div.row { button.primary type="submit" { "Approve" } }
                }
                form method="post" action=(format!("{base}/deny")) {
                    input type="hidden" name="skill" value=(skill);
                    label for=(format!("deny-reason-{skill}")) { "Reason to deny " (skill) }
                    input type="text" id=(format!("deny-reason-{skill}")) name="reason" placeholder="Not allowed for this customer";
                    div.row { button.danger type="submit" { "Deny" } }
                }
            }
        }
        @if ai_active {
            form #assume-form method="post" action=(format!("{base}/reclaim")) {
                h3 { "Assume conversation" }
                p.muted { "The AI agent stops at once; you handle the conversation." }
                label for="reclaim-reason" { "Reason (optional)" }
                input #reclaim-reason type="text" name="reason";
                div.row { button.primary #assume type="submit" { "Assume conversation" } }
            }
        } @else {
            form #handoff-form method="post" action=(format!("{base}/handoff")) {
                h3 { "Transfer to AI" }
                @if by_specialty.is_empty() {
                    p.muted { "No AI agent is active." }
                } @else {
                    label for="handoff-agent" { "AI agent (active agents only)" }
                    select #handoff-agent name="agent" required {
                        @for (group, agents) in &by_specialty {
                            optgroup label=(group) {
                                @for (id, name) in agents {
                                    option value=(id) { (name) }
                                }
                            }
                        }
                    }
                    label for="handoff-reason" { "Reason (optional)" }
                    input #handoff-reason type="text" name="reason" placeholder="Customer wants information about pricing and plans";
                    div.row { button.primary #transfer-to-ai type="submit" { (icon(Icon::Robot)) " Transfer to AI" } }
                }
            }
        }
        form #assign-form method="post" action=(format!("{base}/assign")) {
            h3 { "Assign to a human" }
            label for="assign-human" { "Human" }
            select #assign-human name="human" required {
                @for human in &humans { option value=(human.id) { (presence(human)) } }
            }
            div.row { button #assign type="submit" { "Assign" } }
        }
        form #transfer-form method="post" action=(format!("{base}/transfer")) {
            h3 { "Transfer to a human or a team" }
            label for="transfer-target" { "To" }
            select #transfer-target name="target" required {
                optgroup label="Humans" {
                    @for human in &humans { option value=(format!("human:{}", human.id)) { (presence(human)) } }
                }
                optgroup label="Teams' queues" {
                    @for team in teams(handover, tenant) { option value=(format!("team:{team}")) { (team) } }
                }
            }
            label for="transfer-reason" { "Reason" }
            input #transfer-reason type="text" name="reason" required;
            div.row { button #transfer type="submit" { "Transfer" } }
        }
        form #whisper-form method="post" action=(format!("{base}/whisper")) {
            h3 { "Whisper (internal note)" }
            p.muted { "Never shown to the customer." }
            label for="whisper-text" { "Note" }
            textarea #whisper-text name="text" rows="2" required {}
            label for="whisper-audience" { "For" }
            select #whisper-audience name="audience" {
                option value="staff" { "Staff" }
                option value="ai" { "The AI agent (and staff)" }
            }
            div.row { button #whisper type="submit" { "Add note" } }
        }
        @if view.flagged {
            form method="post" action=(format!("{base}/unflag")) {
                h3 { "Flag" }
                div.row { button #unflag type="submit" { "Lower the flag" } }
            }
        } @else {
            form method="post" action=(format!("{base}/flag")) {
                h3 { "Flag" }
                div.row { button #flag type="submit" { (icon(Icon::Flag)) " Flag: needs help" } }
            }
        }
        form #close-form method="post" action=(format!("{base}/close")) {
            h3 { "Close" }
            label for="close-reason" { "Reason (optional)" }
            input #close-reason type="text" name="reason";
            div.row { button.danger #close type="submit" { "Close conversation" } }
        }
    }
}

/// The conversation pane: header, transcript, actions; `error` is a refused action's message.
pub(super) fn conversation_page(
    handover: &Handover,
    supervisor: &HumanView,
    view: &ConversationView,
    history: &[Arc<RecordedEvent>],
    error: Option<&str>,
) -> Markup {
    let names = Names::of(handover);
    let last = history.last().map_or(0, |r| r.seq);
    let live = format!("/events/c/{}?after={last}", view.id);
    let body = html! {
        p { a href="/" { "← All conversations" } }
        @if let Some(error) = error {
            div.error #action-error role="alert" { strong { "Refused: " } (error) }
        }
        div.pane data-live-conversation=(live) {
            section aria-labelledby="transcript-title" {
                div.pane-head #pane-head data-swappable { (pane_head(handover, view)) }
                h2 #transcript-title { "Transcript" }
                ol.transcript #transcript aria-live="polite" {
                    @for record in history { (transcript_entry(&names, record)) }
                }
            }
            aside.actions #actions aria-label="Actions" data-swappable {
                (actions(handover, supervisor, view, history))
            }
        }
    };
    layout(
        &format!("Conversation with {}", view.customer),
        Some(supervisor),
        body,
    )
}

/// The sign-in page: each listed tenant's supervisors, one button each.
pub(super) fn sign_in(handover: &Handover, tenants: &[TenantId], error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p.muted {
            "Choose who you are. This example has no passwords: a real deployment puts its own "
            "authentication in front of the console."
        }
        @if let Some(error) = error { div.error role="alert" { (error) } }
        @for tenant in tenants {
            @let supervisors: Vec<HumanView> = handover
                .humans(tenant, &HumanQuery::default())
                .into_iter()
                .filter(|h| h.role == Role::Supervisor)
                .collect();
            section.signin aria-label=(format!("Tenant {tenant}")) {
                h2 { "Tenant " (tenant) }
                @if supervisors.is_empty() {
                    p { "No supervisor is registered in this tenant." }
                } @else {
                    form method="post" action="/sign-in" {
                        ul {
                            @for supervisor in &supervisors {
                                li {
                                    button type="submit" name="supervisor" value=(supervisor.id) {
                                        "Sign in as " (supervisor.name)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="get" action="/sign-in" {
            label for="tenant" { "Another tenant" }
            " "
            input #tenant type="text" name="tenant";
            " "
            button type="submit" { "Show its supervisors" }
        }
    };
    layout("Sign in", None, body)
}

/// The page for anything not found, or not the supervisor's to see.
pub(super) fn not_found() -> Markup {
    let body = html! {
        h1 { "Not found" }
        p { "There is no such page or conversation here." }
        p { a href="/" { "All conversations" } }
    };
    layout("Not found", None, body)
}

/// The page for a request that failed for another reason.
pub(super) fn failure(message: &str) -> Markup {
    let body = html! {
        h1 { "Something went wrong" }
        div.error role="alert" { (message) }
        p { a href="/" { "All conversations" } }
    };
    layout("Error", None, body)
}
