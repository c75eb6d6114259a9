//! Which events a sink delivers.

use std::collections::BTreeSet;

/// Which events a sink delivers: by event type, by tenant, or both. The default delivers
/// every event.
///
/// Event types are the names of the audit format (`docs/audit-format.md`), e.g.
/// `message_posted` or `escalated_to_human`; tenants are tenant ids, e.g. `acme`. An event
/// passes when each list that was given names it. An event whose stream's tenant is unknown
/// (its first event is not in the log) passes no tenant list.
///
/// ```
/// use handover_webhooks::EventFilter;
///
/// let filter = EventFilter::all()
///     .event_types(["escalated_to_human", "conversation_closed"])
///     .tenants(["acme"]);
/// assert!(filter.matches("conversation_closed", Some("acme")));
/// assert!(!filter.matches("conversation_closed", Some("globex")));
/// assert!(!filter.matches("message_posted", Some("acme")));
/// assert!(EventFilter::all().matches("message_posted", None));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    event_types: Option<BTreeSet<String>>,
    tenants: Option<BTreeSet<String>>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter::default()
    }

    /// Only events of these types (added to any given before).
    pub fn event_types<I, S>(mut self, types: I) -> EventFilter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types
            .get_or_insert_with(BTreeSet::new)
            .extend(types.into_iter().map(Into::into));
        self
    }

    /// Only events of these tenants' streams (added to any given before).
    pub fn tenants<I, S>(mut self, tenants: I) -> EventFilter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants
            .get_or_insert_with(BTreeSet::new)
            .extend(tenants.into_iter().map(Into::into));
        self
    }

    /// Whether an event of `event_type` in a stream of `tenant` passes.
    pub fn matches(&self, event_type: &str, tenant: Option<&str>) -> bool {
        let type_passes = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(event_type));
        let tenant_passes = match (&self.tenants, tenant) {
            (None, _) => true,
            (Some(tenants), Some(tenant)) => tenants.contains(tenant),
            (Some(_), None) => false,
        };
        type_passes && tenant_passes
    }
}
