//! The percentiles of the default policy's evaluation of one customer message while an AI
//! agent is active: `Rules::default_rules().on_customer_message(..)` on a conversation with 8
//! recent customer messages and the new one folded in, 100,000 times over a varied corpus
//! (short and 1 KB messages in six languages, calm and frustrated), each call timed alone.
//!
//! ```text
//! cargo run --release -p handover-benches --example policy_p95
//! ```
//!
//! Criterion reports means and medians; this reports p50, p95 and p99 in microseconds, with
//! the same for the rules plus scoring the new message on the frustration lexicon (which the
//! conversation does once, when it folds the message in), and for `decide` of the message
//! under the default policy and under no rules.

use std::hint::black_box;
use std::time::Instant;

use handover_core::conversation::decide;
use handover_core::rules::Rules;
use handover_core::signals::Reading;
use handover_core::{Ctx, DefaultPolicy, Policy, Roster};

#[path = "../policy_support.rs"]
mod support;

const RUNS: usize = 100_000;

fn percentiles(what: &str, mut nanos: Vec<u64>) {
    nanos.sort_unstable();
    let at = |p: usize| nanos[(nanos.len() * p / 100).min(nanos.len() - 1)] as f64 / 1000.0;
    println!(
        "{what:<28} p50 {:>7.3} us  p95 {:>7.3} us  p99 {:>7.3} us  (max {:.3} us, {} runs)",
        at(50),
        at(95),
        at(99),
        *nanos.last().unwrap() as f64 / 1000.0,
        nanos.len()
    );
}

fn main() {
    let state = support::ai_active();
    let lexicon = DefaultPolicy::default();
    let rules = Rules::default_rules();
    let empty = Rules::parse("name = \"empty\"").expect("an empty policy parses");
    let roster = Roster::default();

    let mut corpus: Vec<String> = Vec::new();
    for (_, short) in support::SHORT {
        corpus.push(short.to_owned());
        corpus.push(support::long(short));
        corpus.push(short.to_uppercase());
    }
    let prepared: Vec<_> = corpus
        .iter()
        .map(|text| {
            (
                support::with_message(&state, text),
                lexicon.assess(text),
                support::post(text),
            )
        })
        .collect();

    // Warm up.
    for (open, concerns, _) in prepared.iter().cycle().take(10_000) {
        black_box(rules.on_customer_message(open, concerns, &lexicon));
    }

    let mut evaluation = Vec::with_capacity(RUNS);
    for (open, concerns, _) in prepared.iter().cycle().take(RUNS) {
        let started = Instant::now();
        black_box(rules.on_customer_message(black_box(open), concerns, &lexicon));
        evaluation.push(started.elapsed().as_nanos() as u64);
    }
    percentiles("rules (default policy)", evaluation);

    // The same with the new message scored on the lexicon, as the fold of the message does
    // once (the rules then read the scores the conversation keeps).
    let mut scored = Vec::with_capacity(RUNS);
    for ((open, concerns, _), text) in prepared.iter().zip(&corpus).cycle().take(RUNS) {
        let started = Instant::now();
        black_box(handover_core::signals::frustration(black_box(text)));
        black_box(rules.on_customer_message(black_box(open), concerns, &lexicon));
        scored.push(started.elapsed().as_nanos() as u64);
    }
    percentiles("score new message + rules", scored);

    // The whole policy cost of a customer message: the lexicon's concerns (recorded with the
    // message) and its signals (content words and frustration, which the fold keeps), read in
    // one pass as `decide` reads them, and the rules; for every message, then for the short
    // ones (what a chat carries) and the 1 KB ones apart.
    for (label, size) in [
        ("concerns + signals + rules", None),
        ("  short messages only", Some(false)),
        ("  1 KB messages only", Some(true)),
    ] {
        let chosen: Vec<_> = prepared
            .iter()
            .zip(&corpus)
            .filter(|(_, text)| size.is_none_or(|long| (text.len() >= 1000) == long))
            .collect();
        let mut whole = Vec::with_capacity(RUNS);
        for ((open, _, _), text) in chosen.iter().cycle().take(RUNS) {
            let started = Instant::now();
            let reading = Reading::of(black_box(text));
            let concerns = lexicon.assess_read(text, &reading);
            black_box(rules.on_customer_message(black_box(open), &concerns, &lexicon));
            black_box(reading);
            whole.push(started.elapsed().as_nanos() as u64);
        }
        percentiles(label, whole);
    }

    for (name, policy) in [
        ("decide (default policy)", rules),
        ("decide (no rules)", &empty),
    ] {
        let ctx = Ctx::new(&roster, policy as &dyn Policy);
        let mut timings = Vec::with_capacity(RUNS);
        for (_, _, command) in prepared.iter().cycle().take(RUNS) {
            let started = Instant::now();
            let _ = black_box(decide(black_box(&state), black_box(command), &ctx));
            timings.push(started.elapsed().as_nanos() as u64);
        }
        percentiles(name, timings);
    }
}
