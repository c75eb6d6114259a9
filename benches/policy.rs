//! The escalation policy's cost on one customer message while an AI agent is active, under the
//! default policy: a conversation handed to an AI agent, with 8 recent customer messages,
//! takes one more, short (a sentence) or long (1 KB), in several languages.
//!
//! - `decide/default`: `handover_core::conversation::decide` of the customer's `PostMessage`
//!   under the default policy (the concerns lexicon, the fold, and the message rules);
//! - `decide/no_rules`: the same under a policy with no rules (`name = "empty"`): the
//!   difference is what the rules cost;
//! - `rules/default`: the rules alone, `Rules::default_rules().on_customer_message(..)` on the
//!   conversation with the message folded in.
//!
//! `cargo run --release -p handover-benches --example policy_p95` prints the percentiles of the
//! rules' evaluation over a varied corpus.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use handover_core::conversation::decide;
use handover_core::rules::Rules;
use handover_core::{Ctx, DefaultPolicy, Policy, Roster};

#[path = "policy_support.rs"]
mod support;

fn policy(c: &mut Criterion) {
    let state = support::ai_active();
    let roster = Roster::default();
    let default = Rules::default_rules().clone();
    let empty = Rules::parse("name = \"empty\"").expect("an empty policy parses");
    let lexicon = DefaultPolicy::default();

    let mut group = c.benchmark_group("policy_customer_message");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (lang, short) in support::SHORT {
        for (size, text) in [("short", short.to_owned()), ("1kb", support::long(short))] {
            let label = format!("{lang}/{size}");
            let command = support::post(&text);
            for (name, rules) in [("default", &default), ("no_rules", &empty)] {
                let ctx = Ctx::new(&roster, rules as &dyn Policy);
                decide(&state, &command, &ctx).expect("the message is accepted");
                group.bench_with_input(
                    BenchmarkId::new(format!("decide/{name}"), &label),
                    &command,
                    |b, command| b.iter(|| decide(black_box(&state), black_box(command), &ctx)),
                );
            }
            let open = support::with_message(&state, &text);
            let concerns = lexicon.assess(&text);
            group.bench_with_input(
                BenchmarkId::new("rules/default", &label),
                &open,
                |b, open| {
                    b.iter(|| default.on_customer_message(black_box(open), &concerns, &lexicon))
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
