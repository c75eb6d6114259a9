//! The contact center's people and machines: its tenants and teams, the human agents (with
//! their capacities) and supervisors, the shift's presence schedule (breaks, agents signing out
//! and back in), the slow AI agent of each tenant, and the router the simulation opens only
//! between its steps.
//!
//! Everything here is drawn from the seed alone, up front.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use handover::{
    AgentError, AiAgentBehavior, AiSession, DefaultRouter, Directory, HumanId, Loads, MessageText,
    Presence, Router, SkillData, SkillName, Waiting,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::faq::FaqAgent;
use crate::scenario::{lines, TEAMS};

/// The tenants of a simulation, in order; a run with a single human agent staffs the first
/// only.
pub(crate) const TENANTS: [&str; 2] = ["acme", "globex"];

/// What the staff does with a skill that waits for their approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Approval {
    /// The human who handed the conversation off approves it.
    Approve,
    /// They deny it, with a reason.
    Deny,
    /// Nobody decides: the clock denies it at the policy's deadline.
    Lapse,
}

/// The staff's seeded choice for one waiting approval: approve half the time, deny a third,
/// and let the rest lapse.
pub(crate) fn approval_choice(rng: &mut impl Rng) -> Approval {
    match rng.gen_range(0..6) {
        0..=2 => Approval::Approve,
        3 | 4 => Approval::Deny,
        _ => Approval::Lapse,
    }
}

/// Why the staff denies a refund.
pub(crate) const REFUND_DENIED: &str = "the order is past the refund window";

/// Mixed into the seed for the staff's draws, so that they do not shift the scenarios'.
const STAFF_STREAM: u64 = 0x5354_4146_4600;

/// A human agent of the run.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Index into the run's tenants.
    pub(crate) tenant: usize,
    /// Indexes into [`TEAMS`].
    pub(crate) teams: Vec<usize>,
    pub(crate) capacity: u32,
}

/// A scheduled change of presence, in simulated milliseconds from the start of the shift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shift {
    pub(crate) at_ms: u64,
    /// Index into [`Staff::agents`].
    pub(crate) agent: usize,
    pub(crate) presence: Presence,
}

/// Who works the shift, and when they come and go.
#[derive(Clone, Debug)]
pub(crate) struct Staff {
    pub(crate) tenants: Vec<&'static str>,
    pub(crate) agents: Vec<Member>,
    /// Every presence change of the shift, in the order they happen.
    pub(crate) schedule: Vec<Shift>,
}

impl Staff {
    /// The supervisor of tenant `tenant`.
    pub(crate) fn supervisor(&self, tenant: usize) -> (String, String) {
        let name = self.tenants[tenant];
        let mut title = name.to_owned();
        if let Some(first) = title.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        (format!("supervisor-{name}"), format!("{title} supervisor"))
    }
}

/// Staffs a shift of `shift_ms` with `humans` agents spread over the tenants and their teams
/// (every team of every tenant has at least one), each with a capacity from 2 to 5. Every agent
/// signs in at the start and takes a break (away, then available again); every third signs
/// out for a while during the second rush hour and signs in again. Times fall on whole steps.
pub(crate) fn plan(seed: u64, humans: usize, shift_ms: u64, step_ms: u64) -> Staff {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STAFF_STREAM);
    let tenants: Vec<&'static str> = TENANTS.iter().copied().take(humans.clamp(1, 2)).collect();
    let per_tenant = |t: usize| (0..humans).filter(|i| i % tenants.len() == t).count();
    let agents: Vec<Member> = (0..humans)
        .map(|i| {
            let tenant = i % tenants.len();
            let j = i / tenants.len();
            let teams = if per_tenant(tenant) == 1 || j % 3 == 2 {
                (0..TEAMS.len()).collect()
            } else {
                vec![j % TEAMS.len()]
            };
            Member {
                id: format!("human-{}", i + 1),
                name: format!("Agent {}", i + 1),
                tenant,
                teams,
                capacity: rng.gen_range(2..=5),
            }
        })
        .collect();
    let on_step = |ms: u64| ms / step_ms * step_ms;
    let within = |rng: &mut ChaCha8Rng, from: u64, to: u64| {
        let (from, to) = (shift_ms * from / 100, shift_ms * to / 100);
        on_step(rng.gen_range(from..to.max(from + 1)))
    };
    let mut schedule = Vec::new();
    for (agent, _) in agents.iter().enumerate() {
        schedule.push(Shift {
            at_ms: 0,
            agent,
            presence: Presence::Available,
        });
        let away = within(&mut rng, 15, 40);
        let back = away + on_step(rng.gen_range(10..=20) * 60_000);
        schedule.push(Shift {
            at_ms: away.max(step_ms),
            agent,
            presence: Presence::Away,
        });
        schedule.push(Shift {
            at_ms: back.max(2 * step_ms),
            agent,
            presence: Presence::Available,
        });
        if agent % 3 == 1 {
            let out = within(&mut rng, 56, 62);
            let back = out + on_step(rng.gen_range(20..=60) * 60_000);
            schedule.push(Shift {
                at_ms: out.max(3 * step_ms),
                agent,
                presence: Presence::Offline,
            });
            schedule.push(Shift {
                at_ms: back.max(4 * step_ms),
                agent,
                presence: Presence::Available,
            });
        }
    }
    // Stable: an agent's own changes keep their order when they fall on the same step.
    schedule.sort_by_key(|shift| (shift.at_ms, shift.agent));
    Staff {
        tenants,
        agents,
        schedule,
    }
}

/// The runtime's router in a simulation: [`DefaultRouter`] behind a gate. The simulation opens
/// the gate only between its steps, once every conversation's step is done, so which human a
/// waiting conversation goes to never depends on how the steps of one moment interleave.
#[derive(Debug, Default)]
pub(crate) struct GatedRouter {
    open: AtomicBool,
}

impl GatedRouter {
    pub(crate) fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

impl Router for GatedRouter {
    fn route(&self, waiting: &Waiting, directory: &Directory, loads: &Loads) -> Option<HumanId> {
        if self.open.load(Ordering::SeqCst) {
            DefaultRouter.route(waiting, directory, loads)
        } else {
            None
        }
    }
}

/// The skill the slow agents run on the order-status question before they stall.
pub(crate) const LOOKUP_ORDER_SKILL: &str = "lookup_order";

/// The FAQ agent with a model that sometimes never comes back: it answers like
/// [`FaqAgent::sample`], except the order-status question of the scripts, on which it runs
/// the [`LOOKUP_ORDER_SKILL`] and then waits until its assignment ends (the reply deadline
/// passes and the conversation is escalated).
#[derive(Debug)]
pub(crate) struct SlowAgent {
    inner: FaqAgent,
}

impl SlowAgent {
    pub(crate) fn sample() -> SlowAgent {
        SlowAgent {
            inner: FaqAgent::sample(),
        }
    }
}

#[async_trait]
impl AiAgentBehavior for SlowAgent {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        if lines::is_slow_question(text.as_str()) {
            // The lookup runs (under the fence, recorded before and after), but the model
            // answering from it never returns: the call waits until the assignment ends.
            let input = SkillData::new(r#"{"order":"A-1042"}"#)?;
            let lookup = async { Ok::<_, String>("no update from the carrier yet".to_owned()) };
            match session
                .run_skill(SkillName::new(LOOKUP_ORDER_SKILL)?, input, lookup)
                .await
            {
                Ok(_) | Err(handover::Error::Rejected(_)) => {}
                Err(error) => return Err(error.into()),
            }
            session.cancelled().await;
            return Ok(());
        }
        self.inner.on_customer_message(session, text).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_team_of_every_tenant_is_staffed_and_the_plan_is_seeded() {
        for humans in [1, 2, 3, 5, 8, 40] {
            let staff = plan(7, humans, 480 * 60_000, 10_000);
            assert_eq!(staff.agents.len(), humans);
            assert_eq!(staff.tenants.len(), humans.min(2));
            for tenant in 0..staff.tenants.len() {
                for team in 0..TEAMS.len() {
                    assert!(
                        staff
                            .agents
                            .iter()
                            .any(|a| a.tenant == tenant && a.teams.contains(&team)),
                        "{humans} humans: team {team} of tenant {tenant} has nobody"
                    );
                }
            }
            assert!(staff.agents.iter().all(|a| (2..=5).contains(&a.capacity)));
            assert!(staff.schedule.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            // Everyone ends the shift signed in.
            for agent in 0..humans {
                let last = staff.schedule.iter().rev().find(|s| s.agent == agent);
                assert_eq!(last.map(|s| s.presence), Some(Presence::Available));
            }
        }
        let five = plan(7, 5, 480 * 60_000, 10_000);
        assert!(five
            .schedule
            .iter()
            .any(|s| s.presence == Presence::Offline));
        assert_eq!(
            format!("{:?}", five.schedule),
            format!("{:?}", plan(7, 5, 480 * 60_000, 10_000).schedule)
        );
        assert_eq!(five.supervisor(1).0, "supervisor-globex");
    }
}
