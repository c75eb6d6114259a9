//! Where a stream belongs when several processes share one log: its tenant, and the shard the
//! tenant hashes to. Every rule that spans conversations (a human's capacity, a team's queue,
//! an AI agent's deactivation, a human going offline) stays inside a tenant, so placing whole
//! tenants keeps each rule decided in one place.

use crate::{AiAgentEvent, ConversationEvent, Event, HumanEvent, TenantId};

/// How many shards the tenants are spread over. Fixed: changing it moves tenants between
/// shards, which a running cluster cannot do.
pub const SHARDS: u16 = 256;

/// The tenant of the stream that `event` opens, if it is an event that opens one: a
/// conversation started in a tenant, an AI agent or a human registered in one. Events written
/// before tenants existed (`Opened`, `Registered` of an AI agent) belong to
/// [`TenantId::default_tenant`].
///
/// ```
/// use handover_core::placement::opening_tenant;
/// use handover_core::{AiAgentEvent, AiAgentId, Event, TenantId};
///
/// let agent_id = AiAgentId::new("faq").unwrap();
/// assert_eq!(opening_tenant(&Event::AiAgent(AiAgentEvent::Activated { agent_id })), None);
/// ```
pub fn opening_tenant(event: &Event) -> Option<TenantId> {
    match event {
        Event::Conversation(ConversationEvent::Started { tenant, .. })
        | Event::AiAgent(AiAgentEvent::RegisteredIn { tenant, .. })
        | Event::Human(HumanEvent::Registered { tenant, .. }) => Some(tenant.clone()),
        Event::Conversation(ConversationEvent::Opened { .. })
        | Event::AiAgent(AiAgentEvent::Registered { .. }) => Some(TenantId::default_tenant()),
        _ => None,
    }
}

/// The shard of `tenant`: FNV-1a of its bytes, modulo [`SHARDS`]. Written out rather than
/// taken from a hasher, so it never changes with a library or a platform.
///
/// ```
/// use handover_core::placement::{shard_of, SHARDS};
/// use handover_core::TenantId;
///
/// let shard = shard_of(&TenantId::new("acme").unwrap());
/// assert!(shard < SHARDS);
/// assert_eq!(shard, shard_of(&TenantId::new("acme").unwrap()));
/// ```
pub fn shard_of(tenant: &TenantId) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = tenant.as_str().bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    (hash % u64::from(SHARDS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned: a change here moves every tenant of a running cluster.
        assert_eq!(shard_of(&TenantId::default_tenant()), 254);
        assert_eq!(shard_of(&TenantId::new("acme").unwrap()), 15);
        assert_eq!(shard_of(&TenantId::new("globex").unwrap()), 46);
        let used: std::collections::HashSet<u16> = (0..1000)
            .map(|i| shard_of(&TenantId::new(format!("tenant-{i}")).unwrap()))
            .collect();
        assert!(
            used.len() > 200,
            "1,000 tenants use {} of 256 shards",
            used.len()
        );
    }
}
