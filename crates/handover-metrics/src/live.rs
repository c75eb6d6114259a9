//! What is read at each scrape rather than counted from the log: conversations by status and
//! the queues (from the runtime's live queries), acknowledgement latency, the store's figures,
//! and how far the feed is behind the log.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover::{Handover, LiveStatus, TeamId, TenantId};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::feed::{team_label, Progress, QueueLabels};

/// Upper bounds of the acknowledgement latency histogram: half a millisecond to ten seconds.
const ACK_BUCKETS: [Duration; 14] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_micros(2_500_000),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    tenant: String,
    status: String,
}

#[derive(Debug)]
pub(crate) struct Live {
    handover: Handover,
    progress: Arc<Progress>,
    /// Every queue that ever had a conversation waiting: an empty queue is reported at 0
    /// rather than vanishing, so that an alert on its depth resolves.
    queues: Mutex<BTreeSet<(TenantId, Option<TeamId>)>>,
}

impl Live {
    pub(crate) fn new(handover: Handover, progress: Arc<Progress>) -> Live {
        Live {
            handover,
            progress,
            queues: Mutex::new(BTreeSet::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let tenants: Vec<TenantId> = lock(&self.progress.tenants).iter().cloned().collect();
        let counts: Vec<_> = tenants
            .iter()
            .map(|tenant| (tenant, self.handover.conversation_counts(tenant)))
            .collect();

        let mut metric = encoder.encode_descriptor(
            "handover_conversations",
            "Conversations by status now (closed: within the last hour)",
            None,
            MetricType::Gauge,
        )?;
        for (tenant, counts) in &counts {
            for status in LiveStatus::ALL {
                let labels = StatusLabels {
                    tenant: tenant.as_str().to_owned(),
                    status: status.label().replace('-', "_"),
                };
                let count = i64::try_from(counts.of(status)).unwrap_or(i64::MAX);
                metric.encode_family(&labels)?.encode_gauge(&count)?;
            }
        }

        // Each queue now, and every queue seen before at 0 once it emptied.
        let mut queues = lock(&self.queues);
        let mut depth = Vec::new();
        for (tenant, counts) in &counts {
            for queue in &counts.queues {
                queues.insert(((*tenant).clone(), queue.team.clone()));
            }
        }
        for (tenant, team) in queues.iter() {
            let now = counts
                .iter()
                .find(|(t, _)| *t == tenant)
                .and_then(|(_, c)| c.queues.iter().find(|q| q.team == *team));
            let labels = QueueLabels {
                tenant: tenant.as_str().to_owned(),
                team: team_label(team.as_ref()),
            };
            let (waiting, wait) = now.map_or((0, 0.0), |q| {
                (
                    i64::try_from(q.waiting).unwrap_or(i64::MAX),
                    q.longest_wait.as_secs_f64(),
                )
            });
            depth.push((labels, waiting, wait));
        }
        drop(queues);
        let mut metric = encoder.encode_descriptor(
            "handover_queue_depth",
            "Conversations waiting for a human in each queue (team empty: the tenant's general queue)",
            None,
            MetricType::Gauge,
        )?;
        for (labels, waiting, _) in &depth {
            metric.encode_family(labels)?.encode_gauge(waiting)?;
        }
        let mut metric = encoder.encode_descriptor(
            "handover_queue_longest_wait_seconds",
            "How long the oldest conversation of each queue has waited",
            None,
            MetricType::Gauge,
        )?;
        for (labels, _, wait) in &depth {
            metric.encode_family(labels)?.encode_gauge(wait)?;
        }

        let ack = self.handover.ack_latency_histogram(&ACK_BUCKETS);
        let mut previous = 0;
        let buckets: Vec<(f64, u64)> = ack
            .within
            .iter()
            .map(|&(bound, within)| {
                let in_bucket = within.saturating_sub(previous);
                previous = within.max(previous);
                (bound.as_secs_f64(), in_bucket)
            })
            .collect();
        encoder
            .encode_descriptor(
                "handover_ack_latency_seconds",
                "Time from a command's call to its durable acknowledgement",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(ack.sum.as_secs_f64(), ack.count, &buckets, None)?;

        let stats = self.handover.store_stats();
        for (name, help, value) in [
            (
                "handover_store_appends",
                "Appends the store acknowledged since it was opened",
                stats.appends,
            ),
            (
                "handover_store_events_appended",
                "Events in those appends",
                stats.events,
            ),
            (
                "handover_store_groups",
                "Group writes the store made",
                stats.groups,
            ),
            (
                "handover_store_syncs",
                "Sync calls the store made to make groups durable",
                stats.syncs,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None)?;
        }

        let position = self.progress.position.load(Ordering::Acquire);
        let head = self.handover.log_head();
        for (name, help, value) in [
            (
                "handover_log_head_position",
                "The last global position of the log this process knows of",
                head,
            ),
            (
                "handover_feed_position",
                "The position of the last event the metrics have counted",
                position,
            ),
            (
                "handover_feed_lag_events",
                "Events recorded that the metrics have not counted yet",
                head.saturating_sub(position),
            ),
        ] {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        Ok(())
    }
}
