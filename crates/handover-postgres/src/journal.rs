//! Group commit: one task per store takes every append waiting at one moment and writes them
//! in one transaction with one commit.
//!
//! Every writing transaction, on every node, first locks the single `handover_head` row. That
//! lock orders the commits: positions are handed out under it and it is released only after
//! the commit is visible, so a transaction that takes positions `p..q` commits after every
//! transaction that took positions below `p`. A reader that asks for positions above the last
//! one it saw can therefore never skip one that commits late: there is no late commit below a
//! visible position (the bug of stores that take a sequence value at insert and see it at
//! commit). The cost is that commits from different nodes do not overlap; each carries a whole
//! group, which is what keeps that cheap.
//!
//! Reading the streams' tails under the same lock makes the expected-version check exact; the
//! unique key on `(stream_kind, stream_id, seq)` stands behind it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use handover_core::placement::shard_of;
use handover_core::{CommandId, StreamId, TenantId};
use handover_store::{
    encode_record_with_event, Appended, Conflict, Durability, EncodedEvent, ExpectedVersion,
    RecordHash, RecordedAt, RecordedEvent, StoreError,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::cluster::Owned;
use crate::error::engine;
use crate::feed::Feed;
use crate::keys::stream_key;
use crate::read;
use crate::{Connector, Counters};

pub(crate) type AppendResult = Result<Result<Appended, Conflict>, StoreError>;

/// One append waiting for its group.
pub(crate) struct AppendRequest {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    pub(crate) command: Option<CommandId>,
    pub(crate) events: Vec<EncodedEvent>,
    /// The shard of the tenant the first event names, if it opens a stream.
    pub(crate) opening_shard: Option<u16>,
    pub(crate) reply: oneshot::Sender<AppendResult>,
}

impl AppendRequest {
    fn event_count(&self) -> usize {
        self.events.len().max(1)
    }
}

/// What the journal task needs besides its requests.
pub(crate) struct Journal {
    pub(crate) connector: Connector,
    pub(crate) feed: Arc<Feed>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) group_max_events: usize,
    pub(crate) durability: Durability,
    pub(crate) time_source: Option<handover_store::TimeSource>,
    /// This store's id in `NOTIFY` payloads, so its own listener can ignore its own commits.
    pub(crate) instance: Uuid,
    /// In a cluster: the node and the leases it believes it holds.
    pub(crate) fence: Option<Fence>,
}

/// What the journal of a cluster's node checks in every append's transaction.
pub(crate) struct Fence {
    pub(crate) node: Uuid,
    pub(crate) owned: watch::Receiver<Owned>,
    pub(crate) lease: std::time::Duration,
}

/// The journal's connection and its statements, prepared once per connection: a statement
/// sent by text is parsed by the server and described to the client first, a round trip of
/// its own.
pub(crate) struct Session {
    client: Client,
    head: Statement,
    tails: Statement,
    commands: Statement,
    insert_events: Statement,
    insert_commands: Statement,
    update_head: Statement,
    notify: Statement,
    places: Statement,
    fence: Statement,
    insert_places: Statement,
    tails_known: Tails,
    /// The shard of each stream seen: a stream never moves.
    places_known: HashMap<Key, u16>,
}

/// Where the streams this store wrote end (last seq and record hash), and the head after its
/// last commit. Valid while the head row still names this store as its last writer at that
/// position: nobody else wrote since, so a group of streams it wrote before needs no read of
/// their tails. Otherwise it is dropped and the tails are read under the lock.
#[derive(Default)]
struct Tails {
    head: Option<u64>,
    ends: HashMap<(i16, String), (u64, RecordHash)>,
}

/// Streams whose ends the cache keeps at most; beyond, it starts again (like sled's).
const TAILS_KNOWN_MAX: usize = 65_536;

/// A stream as the tables name it: kind and id.
type Key = (i16, String);

/// Where streams end: last seq and record hash.
type Ends = HashMap<Key, (u64, RecordHash)>;

const HEAD: &str = "SELECT position, recorded_at, writer FROM handover_head WHERE one FOR UPDATE";
const TAILS: &str = "SELECT s.kind, s.id, t.seq, t.record
     FROM unnest($1::smallint[], $2::text[]) AS s(kind, id)
     CROSS JOIN LATERAL (
         SELECT e.seq, e.record FROM handover_events e
         WHERE e.stream_kind = s.kind AND e.stream_id = s.id
         ORDER BY e.seq DESC LIMIT 1
     ) t";
const COMMANDS: &str = "SELECT c.stream_kind, c.stream_id, c.command_id, c.first_seq, c.count
     FROM handover_commands c
     JOIN unnest($1::smallint[], $2::text[], $3::uuid[]) AS s(kind, id, command)
       ON c.stream_kind = s.kind AND c.stream_id = s.id AND c.command_id = s.command";
const INSERT_EVENTS: &str =
    "INSERT INTO handover_events (position, stream_kind, stream_id, seq, recorded_at, record)
     SELECT p, k, i, s, $5, r
     FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::bigint[], $6::bytea[])
       AS t(p, k, i, s, r)";
const INSERT_COMMANDS: &str =
    "INSERT INTO handover_commands (stream_kind, stream_id, command_id, first_seq, count)
     SELECT * FROM unnest($1::smallint[], $2::text[], $3::uuid[], $4::bigint[], $5::int[])";
const UPDATE_HEAD: &str =
    "UPDATE handover_head SET position = $1, recorded_at = $2, writer = $3 WHERE one";
const NOTIFY: &str = "SELECT pg_notify('handover_log', $1)";
const PLACES: &str = "SELECT p.stream_kind, p.stream_id, p.shard
     FROM handover_streams p
     JOIN unnest($1::smallint[], $2::text[]) AS s(kind, id)
       ON p.stream_kind = s.kind AND p.stream_id = s.id";
/// The leases of every shard the group writes that this node holds, locked `FOR SHARE` until
/// the commit: a takeover's update of one of them waits for this append, and an append
/// queued behind a takeover reads the new owner and epoch. The shards are given as a list, not
/// joined from `handover_streams` here: when the lock waits for a concurrent update (the node's
/// own renewal), PostgreSQL rechecks the updated row against the query, and a recheck through
/// a join could drop a row the node does hold.
const FENCE: &str = "SELECT shard, epoch FROM handover_leases
     WHERE owner = $1 AND shard = ANY($2::int[])
     FOR SHARE";
const INSERT_PLACES: &str = "INSERT INTO handover_streams (stream_kind, stream_id, shard)
     SELECT * FROM unnest($1::smallint[], $2::text[], $3::int[])
     ON CONFLICT DO NOTHING";

impl Journal {
    /// Runs until every sender is gone.
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<AppendRequest>) {
        let mut session: Option<Session> = None;
        let mut carry: Option<AppendRequest> = None;
        loop {
            let first = match carry.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            let mut events = first.event_count();
            let mut group = vec![first];
            while events < self.group_max_events {
                match requests.try_recv() {
                    Ok(request) => {
                        events += request.event_count();
                        if events > self.group_max_events {
                            carry = Some(request);
                            break;
                        }
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            let ready = match session.take() {
                Some(s) if !s.client.is_closed() => Ok(s),
                _ => self.connect().await,
            };
            match ready {
                Ok(s) => session = self.commit(s, group).await,
                Err(error) => {
                    for request in group {
                        let _ = request.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<Session, StoreError> {
        let client = self.connector.connect().await?;
        let setting = match self.durability {
            Durability::Durable => "on",
            _ => "off",
        };
        client
            .batch_execute(&format!("SET synchronous_commit = {setting}"))
            .await
            .map_err(engine)?;
        if let Some(fence) = &self.fence {
            // A node paused in the middle of a group (between its two round trips) holds the
            // head row and its leases; past a lease, the server ends its session, so the
            // others can take its shards over and write.
            client
                .batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    fence.lease.as_millis().max(1)
                ))
                .await
                .map_err(engine)?;
        }
        let (head, tails, commands, insert_events, insert_commands, update_head, notify) =
            futures::try_join!(
                client.prepare(HEAD),
                client.prepare(TAILS),
                client.prepare(COMMANDS),
                client.prepare(INSERT_EVENTS),
                client.prepare(INSERT_COMMANDS),
                client.prepare(UPDATE_HEAD),
                client.prepare(NOTIFY),
            )
            .map_err(engine)?;
        let (places, fence, insert_places) = futures::try_join!(
            client.prepare(PLACES),
            client.prepare(FENCE),
            client.prepare(INSERT_PLACES),
        )
        .map_err(engine)?;
        Ok(Session {
            client,
            head,
            tails,
            commands,
            insert_events,
            insert_commands,
            update_head,
            notify,
            places,
            fence,
            insert_places,
            tails_known: Tails::default(),
            places_known: HashMap::new(),
        })
    }

    /// Writes one group and answers its appends; gives the session back unless it failed.
    async fn commit(&self, mut session: Session, group: Vec<AppendRequest>) -> Option<Session> {
        let plan = match self.write(&mut session, &group).await {
            Ok(plan) => plan,
            Err(error) => {
                // The outcome of a failed commit is unknown: the caller retries with
                // `append_once`, which finds what was recorded. The connection may be broken
                // or inside an aborted transaction, so a new one serves the next group.
                for request in group {
                    let _ = request.reply.send(Err(error.clone()));
                }
                return None;
            }
        };
        let written = &plan.records[..plan.rows.len()];
        if !written.is_empty() {
            self.counters.groups.fetch_add(1, Ordering::Relaxed);
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            self.counters
                .events
                .fetch_add(written.len() as u64, Ordering::Relaxed);
            self.feed.publish(written);
        }
        for (request, outcome) in group.into_iter().zip(plan.outcomes) {
            let answer = match outcome {
                Outcome::Appended(range) => {
                    self.counters.appends.fetch_add(1, Ordering::Relaxed);
                    Ok(Ok(plan.records[range].to_vec()))
                }
                Outcome::Recorded(range) => Ok(Ok(plan.records[range].to_vec())),
                Outcome::Earlier(records) => Ok(Ok(records)),
                Outcome::Conflict(conflict) => Ok(Err(conflict)),
                Outcome::Nothing => Ok(Ok(Vec::new())),
                Outcome::NotOwner(shard) => Err(StoreError::NotOwner { shard }),
            };
            let _ = request.reply.send(answer);
        }
        Some(session)
    }

    /// One transaction for the whole group, in two round trips: the first opens it, locks the
    /// head and reads what the group's decisions need (the server runs them in order, so the
    /// reads see everything committed before the lock was granted); the second writes and
    /// commits. Every statement's result is checked: after a failed statement the server
    /// answers `COMMIT` with a rollback.
    async fn write(
        &self,
        session: &mut Session,
        group: &[AppendRequest],
    ) -> Result<Plan, StoreError> {
        let client = &session.client;
        let keys: Vec<(i16, String)> = {
            let mut keys: Vec<(i16, String)> =
                group.iter().map(|r| stream_key(&r.stream)).collect();
            keys.sort();
            keys.dedup();
            keys
        };
        // Read only the tails the cache does not hold; whether it may be trusted is known
        // once the head is locked.
        let (cached, unknown): (Vec<&Key>, Vec<&Key>) = keys
            .iter()
            .partition(|key| session.tails_known.ends.contains_key(*key));
        let (c_kinds, c_ids, c_commands) = commands_of(group);
        let commands_params: [&(dyn ToSql + Sync); 3] = [&c_kinds, &c_ids, &c_commands];
        // In a cluster: the shards of the streams whose place is not known yet, and the
        // leases of every shard the group may write, locked with the head.
        let believed: Option<(Uuid, Owned)> = self
            .fence
            .as_ref()
            .map(|fence| (fence.node, Arc::clone(&fence.owned.borrow())));
        let unplaced: Vec<&Key> = keys
            .iter()
            .filter(|key| !session.places_known.contains_key(*key))
            .collect();
        let u_kinds: Vec<i16> = unplaced.iter().map(|k| k.0).collect();
        let u_ids: Vec<&str> = unplaced.iter().map(|k| k.1.as_str()).collect();
        let mut shards: Vec<i32> = keys
            .iter()
            .filter_map(|key| session.places_known.get(key))
            .chain(group.iter().filter_map(|r| r.opening_shard.as_ref()))
            .map(|&shard| i32::from(shard))
            .chain(std::iter::once(i32::from(shard_of(
                &TenantId::default_tenant(),
            ))))
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let node = believed.as_ref().map(|(node, _)| *node);
        let places_params: [&(dyn ToSql + Sync); 2] = [&u_kinds, &u_ids];
        let fence_params: [&(dyn ToSql + Sync); 2] = [&node, &shards];
        let in_cluster = believed.is_some();
        // The fence rides in the first round trip when every stream's shard is known; a
        // stream this session has not placed yet (its first write here, e.g. after a
        // takeover) is looked up first, and the fence follows in a round trip of its own.
        let fence_now = in_cluster && unplaced.is_empty();
        let (_, head, fetched, known, places, leases) = futures::try_join!(
            client.batch_execute("BEGIN"),
            client.query_one(&session.head, &[]),
            read_tails(client, &session.tails, &unknown),
            async {
                if c_commands.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&session.commands, &commands_params).await
                }
            },
            async {
                if unplaced.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&session.places, &places_params).await
                }
            },
            async {
                if fence_now {
                    client.query(&session.fence, &fence_params).await
                } else {
                    Ok(Vec::new())
                }
            },
        )
        .map_err(engine)?;
        for row in &places {
            session.places_known.insert(
                (row.get::<_, i16>(0), row.get::<_, String>(1)),
                row.get::<_, i32>(2) as u16,
            );
        }
        let leases = if in_cluster && !fence_now {
            shards.extend(places.iter().map(|row| row.get::<_, i32>(2)));
            shards.sort_unstable();
            shards.dedup();
            let fence_params: [&(dyn ToSql + Sync); 2] = [&node, &shards];
            client
                .query(&session.fence, &fence_params)
                .await
                .map_err(engine)?
        } else {
            leases
        };
        let fence = believed.map(|(_, owned)| Lease {
            held: leases
                .iter()
                .map(|row| (row.get::<_, i32>(0) as u16, row.get::<_, i64>(1)))
                .collect(),
            believed: owned,
        });
        let head_position = head.get::<_, i64>(0) as u64;
        let last_writer: Option<Uuid> = head.get(2);
        let mut ends: Ends = fetched;
        if session.tails_known.head == Some(head_position) && last_writer == Some(self.instance) {
            for key in cached {
                ends.insert(key.clone(), session.tails_known.ends[key]);
            }
        } else {
            // Someone else wrote since: what the cache says may be behind.
            session.tails_known = Tails::default();
            ends.extend(
                read_tails(client, &session.tails, &cached)
                    .await
                    .map_err(engine)?,
            );
        }
        let plan = self
            .plan(
                client,
                group,
                &head,
                ends,
                &known,
                &session.places_known,
                fence.as_ref(),
            )
            .await?;
        self.finish(session, &plan).await?;
        for (key, shard) in &plan.new_places {
            session.places_known.insert(key.clone(), *shard);
        }
        if session.places_known.len() > TAILS_KNOWN_MAX {
            session.places_known.clear();
        }
        // Committed (or, with nothing written, rolled back with the head unchanged).
        let known = &mut session.tails_known;
        if known.ends.len() + plan.ends.len() > TAILS_KNOWN_MAX {
            known.ends.clear();
        }
        known
            .ends
            .extend(plan.ends.iter().map(|(k, v)| (k.clone(), *v)));
        known.head = if plan.rows.is_empty() {
            (last_writer == Some(self.instance)).then_some(head_position)
        } else {
            Some(plan.head_position + plan.rows.len() as u64)
        };
        Ok(plan)
    }

    /// Decides each append of the group in arrival order.
    // The group's state, read in the caller's transaction: bundling it would only rename it.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        client: &Client,
        group: &[AppendRequest],
        head: &Row,
        mut tails: Ends,
        known: &[Row],
        places: &HashMap<Key, u16>,
        fence: Option<&Lease>,
    ) -> Result<Plan, StoreError> {
        let head_position = head.get::<_, i64>(0) as u64;
        let last_recorded_at: i64 = head.get(1);
        let now = self
            .time_source
            .as_ref()
            .map_or_else(RecordedAt::now, handover_store::TimeSource::now);
        // Never earlier than what any process recorded before: times follow positions.
        let recorded_at = RecordedAt(now.as_micros().max(last_recorded_at));
        let known: HashMap<((i16, String), Uuid), (u64, u64)> = known
            .iter()
            .map(|row| {
                (
                    (
                        (row.get::<_, i16>(0), row.get::<_, String>(1)),
                        row.get::<_, Uuid>(2),
                    ),
                    (row.get::<_, i64>(3) as u64, row.get::<_, i32>(4) as u64),
                )
            })
            .collect();

        let mut plan = Plan {
            head_position,
            recorded_at,
            rows: Vec::new(),
            records: Vec::new(),
            commands: Vec::new(),
            outcomes: Vec::with_capacity(group.len()),
            ends: HashMap::new(),
            new_places: Vec::new(),
        };
        let mut next_position = head_position + 1;
        let mut in_group: HashMap<(StreamId, CommandId), std::ops::Range<usize>> = HashMap::new();
        for request in group {
            let key = stream_key(&request.stream);
            if let Some(command) = request.command {
                if let Some(range) = in_group.get(&(request.stream.clone(), command)) {
                    plan.outcomes.push(Outcome::Recorded(range.clone()));
                    continue;
                }
                if let Some(&(first, count)) = known.get(&(key.clone(), *command.as_uuid())) {
                    // Rare (a retry after a lost answer): read inside the transaction.
                    let records = read::read_stream(
                        client,
                        &request.stream,
                        handover_store::SeqRange {
                            from: first,
                            to: first + count - 1,
                            max: count as usize,
                        },
                    )
                    .await?;
                    plan.outcomes.push(Outcome::Earlier(
                        records.into_iter().map(Arc::new).collect(),
                    ));
                    continue;
                }
            }
            let tail = tails.get(&key).copied().unwrap_or((0, RecordHash::ZERO));
            // A new stream is placed by the tenant its first event names.
            let shard = match places.get(&key) {
                Some(&shard) => shard,
                None => request
                    .opening_shard
                    .unwrap_or_else(|| shard_of(&TenantId::default_tenant())),
            };
            if let Some(lease) = fence {
                if !lease.admits(shard) {
                    plan.outcomes.push(Outcome::NotOwner(shard));
                    continue;
                }
            }
            if !request.expected.admits(tail.0) {
                plan.outcomes
                    .push(Outcome::Conflict(request.expected.conflict(tail.0)));
                continue;
            }
            if request.events.is_empty() {
                plan.outcomes.push(Outcome::Nothing);
                continue;
            }
            let start = plan.records.len();
            let (mut seq, mut previous) = tail;
            for event in &request.events {
                seq += 1;
                let bytes = encode_record_with_event(
                    next_position,
                    &request.stream,
                    seq,
                    recorded_at,
                    event,
                    &previous,
                )?;
                previous = RecordHash::of(&bytes);
                plan.records.push(Arc::new(RecordedEvent {
                    position: next_position,
                    stream: request.stream.clone(),
                    seq,
                    recorded_at,
                    event: event.event().clone(),
                }));
                plan.rows.push(EventRow {
                    position: next_position as i64,
                    kind: key.0,
                    id: key.1.clone(),
                    seq: seq as i64,
                    bytes,
                });
                next_position += 1;
            }
            let range = start..plan.records.len();
            if let Some(command) = request.command {
                plan.commands.push(CommandRow {
                    kind: key.0,
                    id: key.1.clone(),
                    command: *command.as_uuid(),
                    first_seq: (tail.0 + 1) as i64,
                    count: request.events.len() as i32,
                });
                in_group.insert((request.stream.clone(), command), range.clone());
            }
            if tail.0 == 0 && !places.contains_key(&key) {
                plan.new_places.push((key.clone(), shard));
            }
            tails.insert(key, (seq, previous));
            plan.outcomes.push(Outcome::Appended(range));
        }
        plan.ends = tails;
        Ok(plan)
    }

    /// Writes the planned rows, the commands and the new head, wakes the other processes'
    /// feeds, and commits, pipelined in one round trip; a group that writes nothing rolls back.
    async fn finish(&self, session: &Session, plan: &Plan) -> Result<(), StoreError> {
        let client = &session.client;
        if plan.rows.is_empty() {
            return client.batch_execute("ROLLBACK").await.map_err(engine);
        }
        let positions: Vec<i64> = plan.rows.iter().map(|r| r.position).collect();
        let kinds: Vec<i16> = plan.rows.iter().map(|r| r.kind).collect();
        let ids: Vec<&str> = plan.rows.iter().map(|r| r.id.as_str()).collect();
        let seqs: Vec<i64> = plan.rows.iter().map(|r| r.seq).collect();
        let records: Vec<&[u8]> = plan.rows.iter().map(|r| r.bytes.as_slice()).collect();
        let recorded_at = plan.recorded_at.as_micros();
        let new_head = plan.head_position as i64 + plan.rows.len() as i64;
        let notice = format!("{}:{new_head}", self.instance);
        let c_kinds: Vec<i16> = plan.commands.iter().map(|c| c.kind).collect();
        let c_ids: Vec<&str> = plan.commands.iter().map(|c| c.id.as_str()).collect();
        let c_commands: Vec<Uuid> = plan.commands.iter().map(|c| c.command).collect();
        let c_first: Vec<i64> = plan.commands.iter().map(|c| c.first_seq).collect();
        let c_count: Vec<i32> = plan.commands.iter().map(|c| c.count).collect();
        let event_params: [&(dyn ToSql + Sync); 6] =
            [&positions, &kinds, &ids, &seqs, &recorded_at, &records];
        let command_params: [&(dyn ToSql + Sync); 5] =
            [&c_kinds, &c_ids, &c_commands, &c_first, &c_count];
        let head_params: [&(dyn ToSql + Sync); 3] = [&new_head, &recorded_at, &self.instance];
        let notify_params: [&(dyn ToSql + Sync); 1] = [&notice];
        let p_kinds: Vec<i16> = plan.new_places.iter().map(|(k, _)| k.0).collect();
        let p_ids: Vec<&str> = plan.new_places.iter().map(|(k, _)| k.1.as_str()).collect();
        let p_shards: Vec<i32> = plan
            .new_places
            .iter()
            .map(|(_, shard)| i32::from(*shard))
            .collect();
        let places_params: [&(dyn ToSql + Sync); 3] = [&p_kinds, &p_ids, &p_shards];
        let (events, _, _, _, _, ()) = futures::try_join!(
            client.execute(&session.insert_events, &event_params),
            async {
                if plan.new_places.is_empty() {
                    Ok(0)
                } else {
                    client.execute(&session.insert_places, &places_params).await
                }
            },
            async {
                if plan.commands.is_empty() {
                    Ok(0)
                } else {
                    client
                        .execute(&session.insert_commands, &command_params)
                        .await
                }
            },
            client.execute(&session.update_head, &head_params),
            client.execute(&session.notify, &notify_params),
            client.batch_execute("COMMIT"),
        )
        .map_err(engine)?;
        if events != plan.rows.len() as u64 {
            // Cannot happen once the statements above succeeded; never acknowledge on it.
            return Err(StoreError::Engine(format!(
                "PostgreSQL inserted {events} of {} events",
                plan.rows.len()
            )));
        }
        Ok(())
    }
}

/// The last seq and record hash of each stream in `keys` (absent: an empty stream).
async fn read_tails(
    client: &Client,
    statement: &Statement,
    keys: &[&(i16, String)],
) -> Result<Ends, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<i16> = keys.iter().map(|k| k.0).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let rows = client.query(statement, &[&kinds, &ids]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let seq: i64 = row.get(2);
            let record: &[u8] = row.get(3);
            (
                (row.get::<_, i16>(0), row.get::<_, String>(1)),
                (seq as u64, RecordHash::of(record)),
            )
        })
        .collect())
}

/// The commands of a group, as the arrays the commands query takes.
fn commands_of(group: &[AppendRequest]) -> (Vec<i16>, Vec<String>, Vec<Uuid>) {
    let mut kinds = Vec::new();
    let mut ids = Vec::new();
    let mut commands = Vec::new();
    for request in group {
        if let Some(command) = request.command {
            let (kind, id) = stream_key(&request.stream);
            kinds.push(kind);
            ids.push(id);
            commands.push(*command.as_uuid());
        }
    }
    (kinds, ids, commands)
}

/// What a group will write and answer.
struct Plan {
    head_position: u64,
    recorded_at: RecordedAt,
    /// The rows to insert, in position order.
    rows: Vec<EventRow>,
    /// The records of `rows`, as answered and published.
    records: Vec<Arc<RecordedEvent>>,
    commands: Vec<CommandRow>,
    /// One per request, in order.
    outcomes: Vec<Outcome>,
    /// Where each stream of the group ends once the group is committed.
    ends: Ends,
    /// The streams this group opens, with their shards.
    new_places: Vec<(Key, u16)>,
}

/// The leases a group's transaction found this node holding, against the ones it believed
/// it held when the group began.
struct Lease {
    held: HashMap<u16, i64>,
    believed: Owned,
}

impl Lease {
    /// Whether this node may write `shard`: the database names it the owner under the very
    /// epoch it was granted (a shard lost and claimed again must be reloaded first).
    fn admits(&self, shard: u16) -> bool {
        matches!(
            (self.held.get(&shard), self.believed.get(&shard)),
            (Some(held), Some(believed)) if held == believed
        )
    }
}

struct EventRow {
    position: i64,
    kind: i16,
    id: String,
    seq: i64,
    bytes: Vec<u8>,
}

struct CommandRow {
    kind: i16,
    id: String,
    command: Uuid,
    first_seq: i64,
    count: i32,
}

enum Outcome {
    /// Appended now: these records of the plan.
    Appended(std::ops::Range<usize>),
    /// A retry of a command appended earlier in this group: the same records.
    Recorded(std::ops::Range<usize>),
    /// A retry of a command recorded by an earlier group.
    Earlier(Appended),
    Conflict(Conflict),
    /// An append of no events that admits its version: nothing to write.
    Nothing,
    /// This node does not hold the lease of the stream's shard.
    NotOwner(u16),
}
