//! The facade's half for the people of a contact center: registering humans and their
//! presence, the "transfer to" list, the queues, and the commands that move a conversation
//! between humans (assign, accept, transfer), notes for staff and flags.

use std::sync::Arc;

use handover_core::{
    AgentName, AiAgentCommand, AiAgentProfile, Channel, ConversationCommand, ConversationId,
    CustomerId, Human, HumanCommand, HumanId, Language, MessageText, NoteAudience, Participant,
    Presence, Reason, Role, StreamId, TeamId, TenantId, TransferTarget,
};
use handover_store::RecordedEvent;
use uuid::Uuid;

use crate::error::Error;
use crate::facade::Handover;
use crate::humans;
use crate::router::Waiting;
use crate::view::Receipt;

/// A human to register: who they are, what they may do, where they take conversations from.
///
/// ```
/// use handover::{AgentName, HumanId, NewHuman, Role, TeamId, TenantId};
///
/// let ana = NewHuman::agent(HumanId::new("ana").unwrap(), AgentName::new("Ana").unwrap())
///     .tenant(TenantId::new("acme").unwrap())
///     .teams(vec![TeamId::new("billing").unwrap()])
///     .capacity(3);
/// assert_eq!(ana.role, Role::Agent);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewHuman {
    /// Their id.
    pub id: HumanId,
    /// Their display name.
    pub name: AgentName,
    /// Agent or supervisor.
    pub role: Role,
    /// Their tenant. Default: [`TenantId::default_tenant`].
    pub tenant: TenantId,
    /// The teams whose queues they take conversations from. Default: none (the general
    /// queue only).
    pub teams: Vec<TeamId>,
    /// The most conversations they handle at once. Default: 5.
    pub capacity: u32,
}

impl NewHuman {
    /// An agent of the default tenant, in no team, with a capacity of 5.
    pub fn agent(id: HumanId, name: AgentName) -> NewHuman {
        NewHuman {
            id,
            name,
            role: Role::Agent,
            tenant: TenantId::default_tenant(),
            teams: Vec::new(),
            capacity: 5,
        }
    }

    /// A supervisor of the default tenant, in no team, with a capacity of 5.
    pub fn supervisor(id: HumanId, name: AgentName) -> NewHuman {
        NewHuman {
            role: Role::Supervisor,
            ..NewHuman::agent(id, name)
        }
    }

    /// In `tenant`.
    pub fn tenant(mut self, tenant: TenantId) -> NewHuman {
        self.tenant = tenant;
        self
    }

    /// In these teams.
    pub fn teams(mut self, teams: Vec<TeamId>) -> NewHuman {
        self.teams = teams;
        self
    }

    /// With this capacity.
    pub fn capacity(mut self, capacity: u32) -> NewHuman {
        self.capacity = capacity;
        self
    }
}

/// A human as the "transfer to" list shows them: who, presence, and how loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HumanView {
    /// Their id.
    pub id: HumanId,
    /// Their display name.
    pub name: AgentName,
    /// Agent or supervisor.
    pub role: Role,
    /// Their tenant.
    pub tenant: TenantId,
    /// Their teams.
    pub teams: Vec<TeamId>,
    /// The most conversations they handle at once.
    pub capacity: u32,
    /// Available, away or offline.
    pub presence: Presence,
    /// The conversations they handle now.
    pub load: u32,
}

impl HumanView {
    fn of(human: &Human, load: u32) -> HumanView {
        let profile = &human.profile;
        HumanView {
            id: profile.id.clone(),
            name: profile.name.clone(),
            role: profile.role,
            tenant: profile.tenant.clone(),
            teams: profile.teams.clone(),
            capacity: profile.capacity,
            presence: human.presence,
            load,
        }
    }
}

/// Which humans [`Handover::humans`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HumanQuery {
    /// Only this team's members.
    pub team: Option<TeamId>,
    /// Only humans with this presence.
    pub presence: Option<Presence>,
}

impl HumanQuery {
    /// Only `team`'s members.
    pub fn team(mut self, team: TeamId) -> HumanQuery {
        self.team = Some(team);
        self
    }

    /// Only humans with `presence`.
    pub fn presence(mut self, presence: Presence) -> HumanQuery {
        self.presence = Some(presence);
        self
    }
}

/// A conversation to open with [`Handover::start_conversation`].
///
/// ```
/// use handover::{Channel, CustomerId, Language, NewConversation, TeamId, TenantId};
///
/// let new = NewConversation::new(TenantId::new("acme").unwrap(), CustomerId::new("c-1").unwrap(), Channel::new("whatsapp").unwrap())
///     .team(TeamId::new("billing").unwrap())
///     .language(Language::new("pt-BR").unwrap());
/// assert!(new.human.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewConversation {
    /// The tenant.
    pub tenant: TenantId,
    /// The customer.
    pub customer: CustomerId,
    /// The channel.
    pub channel: Channel,
    /// The team whose queue it waits in when it needs a human.
    pub team: Option<TeamId>,
    /// The customer's language.
    pub language: Option<Language>,
    /// The human to give it to at once, if any.
    pub human: Option<HumanId>,
}

impl NewConversation {
    /// A conversation of `customer` on `channel` in `tenant`, with no team, language or human.
    pub fn new(tenant: TenantId, customer: CustomerId, channel: Channel) -> NewConversation {
        NewConversation {
            tenant,
            customer,
            channel,
            team: None,
            language: None,
            human: None,
        }
    }

    /// Waiting in `team`'s queue when it needs a human.
    pub fn team(mut self, team: TeamId) -> NewConversation {
        self.team = Some(team);
        self
    }

    /// The customer speaks `language`.
    pub fn language(mut self, language: Language) -> NewConversation {
        self.language = Some(language);
        self
    }

    /// Given to `human` at once.
    pub fn human(mut self, human: HumanId) -> NewConversation {
        self.human = Some(human);
        self
    }
}

impl Handover {
    async fn human_command(
        &self,
        id: HumanId,
        command: HumanCommand,
    ) -> Result<Vec<Arc<RecordedEvent>>, Error> {
        let tenant = match &command {
            HumanCommand::Register { tenant, .. } => Some(tenant.clone()),
            _ => self
                .runtime()
                .conversations
                .directory
                .read()
                .get(&id)
                .map(|human| human.profile.tenant.clone()),
        };
        let call = || match &command {
            HumanCommand::Register {
                tenant,
                name,
                role,
                teams,
                capacity,
            } => Some(crate::wire::Call::RegisterHuman {
                id: id.clone(),
                name: name.clone(),
                role: *role,
                tenant: tenant.clone(),
                teams: teams.clone(),
                capacity: *capacity,
            }),
            HumanCommand::SetPresence { presence } => Some(crate::wire::Call::SetPresence {
                human: id.clone(),
                presence: *presence,
            }),
            HumanCommand::Remove => Some(crate::wire::Call::RemoveHuman { human: id.clone() }),
            _ => None,
        };
        // Forwarded: the owner records it; its events reach this node through the follower.
        if let Some(done) = self
            .forward_foreign(tenant, &StreamId::Human(id.clone()), call)
            .await
        {
            return done.map(|()| Vec::new());
        }
        match humans::execute(self.runtime(), id.clone(), command.clone()).await {
            Err(Error::Store(handover_store::StoreError::NotOwner { shard })) => {
                match (self.runtime().forward.get(), call()) {
                    (Some(forward), Some(call)) => {
                        crate::facade::forward_done(self.runtime(), &**forward, shard, call)
                            .await
                            .map(|()| Vec::new())
                    }
                    _ => Err(Error::Store(handover_store::StoreError::NotOwner { shard })),
                }
            }
            other => other,
        }
    }

    /// Registers a human (agent or supervisor). They start offline:
    /// [`set_presence`](Self::set_presence) signs them in.
    pub async fn register_human(&self, human: NewHuman) -> Result<(), Error> {
        self.human_command(
            human.id,
            HumanCommand::Register {
                tenant: human.tenant,
                name: human.name,
                role: human.role,
                teams: human.teams,
                capacity: human.capacity,
            },
        )
        .await?;
        Ok(())
    }

    /// Changes a human's presence. Going offline puts the conversations they handle back in
    /// their queues (to be routed again); becoming available lets waiting conversations come
    /// to them.
    pub async fn set_presence(&self, human: HumanId, presence: Presence) -> Result<(), Error> {
        self.human_command(human, HumanCommand::SetPresence { presence })
            .await?;
        Ok(())
    }

    /// Removes a human: they may no longer act, and their conversations are requeued.
    pub async fn remove_human(&self, human: HumanId) -> Result<(), Error> {
        self.human_command(human, HumanCommand::Remove).await?;
        Ok(())
    }

    /// Whether this process writes `tenant` (on a cluster's node: holds the lease of its shard;
    /// always, on a single process). Any node answers for every tenant; this says where its
    /// writes run.
    pub fn owns_tenant(&self, tenant: &TenantId) -> bool {
        self.runtime().conversations.store.owns(tenant)
    }

    /// A registered human, with their presence and load.
    pub fn human(&self, id: &HumanId) -> Option<HumanView> {
        let shared = &self.runtime().conversations;
        let directory = shared.directory.read();
        let board = shared.board.lock();
        directory
            .get(id)
            .map(|human| HumanView::of(human, board.loads.of(id)))
    }

    /// The humans of `tenant` (removed ones left out), by id, with their presence and load:
    /// how a caller builds a "transfer to" list.
    pub fn humans(&self, tenant: &TenantId, query: &HumanQuery) -> Vec<HumanView> {
        let shared = &self.runtime().conversations;
        let directory = shared.directory.read();
        let board = shared.board.lock();
        directory
            .of_tenant(tenant)
            .filter(|h| query.team.as_ref().is_none_or(|team| h.in_team(team)))
            .filter(|h| query.presence.is_none_or(|p| h.presence == p))
            .map(|human| HumanView::of(human, board.loads.of(&human.profile.id)))
            .collect()
    }

    /// The conversations of `tenant` waiting for a human, oldest first, with their queue,
    /// since when and why.
    pub fn waiting(&self, tenant: &TenantId) -> Vec<Waiting> {
        self.runtime()
            .conversations
            .board
            .lock()
            .waiting(Some(tenant))
    }

    /// Offers `tenant`'s waiting conversations to the router now, oldest first, and returns
    /// once every one of them has been routed or left waiting. The runtime does this by itself
    /// whenever a conversation starts waiting or a human may have become free; call it when
    /// the router's answers change without the runtime knowing (an external ACD), or to wait
    /// for routing to settle (a simulation's step).
    pub async fn route_now(&self, tenant: &TenantId) {
        // Another node routes the tenants it decides for.
        if let (Some(forward), Some(shard)) = (
            self.runtime().forward.get(),
            self.foreign_shard(Some(tenant.clone()), None).await,
        ) {
            let call = crate::wire::Call::RouteNow {
                tenant: tenant.clone(),
            };
            if let Err(error) =
                crate::facade::forward_done(self.runtime(), &**forward, shard, call).await
            {
                tracing::warn!(%tenant, %error, "routing on the tenant's node failed");
            }
            return;
        }
        self.runtime()
            .conversations
            .dispatch
            .route_now(tenant.clone())
            .await;
    }

    /// Returns once every deadline that has passed by the clock's now (SLA thresholds, AI
    /// reply deadlines, idle closing) has been recorded or found not due. With a manual clock,
    /// call it after advancing the clock to let the timers catch up before the next step.
    pub async fn settle_timers(&self) {
        let shared = &self.runtime().conversations;
        shared.timers.settled(shared.clock.now()).await;
    }

    /// Registers an AI agent in `tenant`; it may take only that tenant's conversations. It
    /// starts inactive.
    pub async fn register_ai_agent_in(
        &self,
        tenant: TenantId,
        profile: AiAgentProfile,
    ) -> Result<(), Error> {
        self.agent_command(
            profile.id,
            AiAgentCommand::RegisterIn {
                tenant,
                name: profile.name,
                specialties: profile.specialties,
            },
        )
        .await
    }

    /// Opens a conversation in a tenant: given to its human if named (registered there, not
    /// offline), otherwise waiting in its team's queue, where the router (or a human
    /// accepting it) takes it. The receipt carries its new id.
    pub async fn start_conversation(&self, new: NewConversation) -> Result<Receipt, Error> {
        let id = ConversationId::from_uuid(Uuid::now_v7());
        self.execute(
            id,
            ConversationCommand::Start {
                tenant: new.tenant,
                customer: new.customer,
                channel: new.channel,
                team: new.team,
                language: new.language,
                human: new.human,
            },
        )
        .await
    }

    /// A supervisor gives the conversation to a named human (registered in the tenant, not
    /// offline).
    pub async fn assign(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        to: HumanId,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::Assign {
                by: Participant::Human(by),
                to,
            },
        )
        .await
    }

    /// A human takes a conversation waiting in one of their teams' queues.
    pub async fn accept(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
    ) -> Result<Receipt, Error> {
        self.execute(conversation_id, ConversationCommand::Accept { by })
            .await
    }

    /// A human takes the oldest conversation waiting in the queues they may accept from;
    /// `None` when none waits.
    pub async fn accept_next(&self, by: HumanId) -> Result<Option<Receipt>, Error> {
        // The queues are judged on the node that decides for the human's tenant.
        if let Some(forward) = self.runtime().forward.get() {
            let tenant = self
                .runtime()
                .conversations
                .directory
                .read()
                .get(&by)
                .map(|human| human.profile.tenant.clone());
            let stream = StreamId::Human(by.clone());
            if let Some(shard) = self.foreign_shard(tenant, Some(&stream)).await {
                let call = crate::wire::Call::AcceptNext { by };
                return crate::facade::forward_maybe_receipt(
                    self.runtime(),
                    &**forward,
                    shard,
                    call,
                )
                .await;
            }
        }
        let candidates: Vec<ConversationId> = {
            let shared = &self.runtime().conversations;
            let directory = shared.directory.read();
            let Some(human) = directory.get(&by) else {
                return Err(handover_core::Rejection::UnknownHuman { human_id: by }.into());
            };
            let tenant = human.profile.tenant.clone();
            shared
                .board
                .lock()
                .waiting(Some(&tenant))
                .into_iter()
                .filter(|w| {
                    human.is_supervisor() || w.team.as_ref().is_none_or(|t| human.in_team(t))
                })
                .map(|w| w.conversation_id)
                .collect()
        };
        for id in candidates {
            match self.accept(id, by.clone()).await {
                Ok(receipt) => return Ok(Some(receipt)),
                // Taken by someone else meanwhile: the next one.
                Err(Error::Rejected(handover_core::Rejection::NotAwaitingHuman)) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// The assigned human or a supervisor passes the conversation to another human or to a
    /// team's queue, with a reason.
    pub async fn transfer(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        to: TransferTarget,
        reason: Reason,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::Transfer { by, to, reason },
        )
        .await
    }

    /// Writes an internal note: for staff, or guidance for the AI agent handling the
    /// conversation. Never shown to the customer.
    pub async fn whisper(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        to: NoteAudience,
        text: MessageText,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::Whisper { by, to, text },
        )
        .await
    }

    /// The assigned human (or a supervisor) raises "needs help".
    pub async fn raise_flag(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::RaiseFlag {
                by: Participant::Human(by),
            },
        )
        .await
    }

    /// A supervisor lowers the flag.
    pub async fn lower_flag(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
    ) -> Result<Receipt, Error> {
        self.execute(conversation_id, ConversationCommand::LowerFlag { by })
            .await
    }
}
