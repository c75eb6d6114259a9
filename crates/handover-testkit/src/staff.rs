//! Humans for tests whose subject is not authority: registered and signed in before they act.

use handover::{AgentName, Handover, HumanId, NewHuman, Presence};

fn human_id(id: &str) -> HumanId {
    HumanId::new(id).unwrap_or_else(|e| panic!("{id:?} is not a valid human id: {e}"))
}

fn name(id: &str) -> AgentName {
    AgentName::new(id).unwrap_or_else(|e| panic!("{id:?} is not a valid name: {e}"))
}

/// Registers each of `ids` as a supervisor of the default tenant, named after their id, and
/// makes them available. A supervisor may act on every conversation of the tenant, so the
/// test's humans may post, hand off, reclaim and close wherever it needs. Panics if any step is
/// refused.
///
/// ```no_run
/// # async fn demo(handover: handover::Handover) {
/// handover_testkit::staff(&handover, &["ana", "bruno"]).await;
/// # }
/// ```
pub async fn staff(handover: &Handover, ids: &[&str]) {
    for id in ids {
        register(handover, NewHuman::supervisor(human_id(id), name(id))).await;
    }
}

/// Registers each of `ids` as an agent of the default tenant, named after their id, and makes
/// them available: an agent acts only on the conversations they answer for.
pub async fn agents(handover: &Handover, ids: &[&str]) {
    for id in ids {
        register(handover, NewHuman::agent(human_id(id), name(id))).await;
    }
}

/// Registers `human` and makes them available.
pub async fn register(handover: &Handover, human: NewHuman) {
    let id = human.id.clone();
    handover
        .register_human(human)
        .await
        .unwrap_or_else(|e| panic!("registering {id} was refused: {e}"));
    handover
        .set_presence(id.clone(), Presence::Available)
        .await
        .unwrap_or_else(|e| panic!("signing {id} in was refused: {e}"));
}
