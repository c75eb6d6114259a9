//! The report as one HTML page: inline CSS and inline SVG charts drawn here, no script and no
//! reference to anything outside the page, so it opens the same offline, from a mail
//! attachment or an archive. Every string that comes from the log (names, ids, reasons) is
//! escaped.

use std::fmt::Write as _;

use super::{Report, TimeBucket};
use crate::stats::Percentiles;
use crate::timefmt::{format_duration, format_recorded_at};

/// Colours of the series, in order; chosen to stay apart for the common colour blindnesses.
const PALETTE: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9",
];

/// The width of every chart, in SVG units (the page scales it down on a narrow screen).
const WIDTH: f64 = 760.0;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1b1b1b;background:#fff}\
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{padding:.2rem .6rem;text-align:left;\
border-bottom:1px solid #eee}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}\
svg{max-width:100%;height:auto;font-size:12px}svg text{fill:#333}\
.note{color:#555;font-size:.9rem}dt{font-weight:600}dd{margin:0 0 .6rem 1rem}";

/// Escapes `text` for HTML text and attribute values (and SVG's, which is XML).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |rate| format!("{:.1}%", rate * 100.0))
}

fn millis(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "–".to_owned(),
        |ms| {
            format_duration(
                i64::try_from(ms)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000),
            )
        },
    )
}

/// A short label for a duration bound: `1s`, `5m`, `2h`.
fn bound_label(ms: u64) -> String {
    match ms {
        ms if ms >= 3_600_000 && ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms >= 60_000 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// A bucket's label: its start, as much of it as tells apart the buckets of a timeline of
/// `buckets` buckets of this width.
fn bucket_label(bucket: &TimeBucket, width_micros: i64, buckets: usize) -> String {
    const DAY: i64 = 86_400_000_000;
    let full =
        format_recorded_at(handover_store::RecordedAt(bucket.start_micros)).unwrap_or_default();
    let spans_days = width_micros.saturating_mul(buckets as i64) > DAY;
    // `YYYY-MM-DDTHH:MM:SS.ffffffZ`: days need the date, shorter buckets the time of day, and
    // the date too when the timeline crosses midnight.
    let (from, to) = match width_micros {
        w if w >= DAY => (0, 10),
        _ if spans_days => (5, 16),
        w if w >= 60_000_000 => (11, 16),
        _ => (11, 19),
    };
    full.get(from..to).unwrap_or(&full).replace('T', " ")
}

/// One series of a chart.
struct Series<'a> {
    name: &'a str,
    values: Vec<f64>,
}

/// Opens a chart: the figure, its caption and the SVG with its title, for a screen reader and
/// for a reader of the source alike.
fn open_chart(out: &mut String, id: &str, title: &str, height: f64) {
    let title = escape(title);
    let _ = write!(
        out,
        "<figure id=\"{id}\"><figcaption>{title}</figcaption>\
<svg role=\"img\" aria-labelledby=\"{id}-title\" \
viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\">\
<title id=\"{id}-title\">{title}</title>"
    );
}

fn close_chart(out: &mut String, series: &[Series<'_>], y: f64) {
    legend(out, series, y);
    out.push_str("</svg></figure>\n");
}

fn legend(out: &mut String, series: &[Series<'_>], y: f64) {
    if series.len() < 2 {
        return;
    }
    let mut x = 10.0;
    for (n, one) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
<text x=\"{}\" y=\"{}\">{}</text>",
            y - 9.0,
            PALETTE[n % PALETTE.len()],
            x + 14.0,
            y,
            escape(one.name)
        );
        x += 24.0 + 7.0 * one.name.chars().count() as f64;
    }
}

/// A round step for an axis of four steps that reaches `max`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8
/// times a power of ten, and a whole number for counts (`whole`).
fn axis_step(max: f64, whole: bool) -> f64 {
    let least = max / 4.0;
    if least <= 0.0 || !least.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(least.log10().floor());
    let step = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|step| *step >= least)
        .unwrap_or(10.0 * magnitude);
    if whole {
        step.ceil()
    } else {
        step
    }
}

/// The top of an axis of four round steps that reaches `max`.
fn axis_top(max: f64, whole: bool) -> f64 {
    4.0 * axis_step(max, whole)
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Horizontal bars, one row per category; several series side by side or, `stacked`, end to
/// end. `unit` follows each value.
fn bars(
    out: &mut String,
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series<'_>],
    stacked: bool,
    unit: &str,
) {
    let whole = unit != "%";
    let label_width = 250.0;
    let per_series = if stacked { 1 } else { series.len().max(1) };
    let bar = 14.0;
    let row = bar * per_series as f64 + 8.0;
    let top = 10.0;
    let height = top + row * categories.len().max(1) as f64 + 40.0;
    open_chart(out, id, title, height);
    if categories.is_empty() {
        let _ = write!(out, "<text x=\"10\" y=\"30\">nothing to show</text>");
        close_chart(out, &[], height - 8.0);
        return;
    }
    let max = (0..categories.len())
        .map(|n| {
            let values = series
                .iter()
                .map(|s| s.values.get(n).copied().unwrap_or(0.0));
            if stacked {
                values.sum()
            } else {
                values.fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let scale_top = if whole { axis_top(max, true) } else { 100.0 };
    let plot = WIDTH - label_width - 70.0;
    let axis_y = top + row * categories.len() as f64;
    // A quarter scale to read the lengths against, under the bars.
    for step in 0..=4 {
        let x = label_width + plot * f64::from(step) / 4.0;
        let stroke = if step == 0 { "#999" } else { "#e5e5e5" };
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"{stroke}\" stroke-width=\"0.8\"/>\
<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}{unit}</text>",
            axis_y + 14.0,
            number(scale_top * f64::from(step) / 4.0)
        );
    }
    for (n, category) in categories.iter().enumerate() {
        let y = top + row * n as f64;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_width - 6.0,
            y + row / 2.0 + 2.0,
            escape(&shorten(category, 38))
        );
        let mut x = label_width;
        let mut total = 0.0;
        for (s, one) in series.iter().enumerate() {
            let value = one.values.get(n).copied().unwrap_or(0.0);
            let length = value / scale_top * plot;
            let bar_y = if stacked {
                y + 4.0
            } else {
                y + 4.0 + bar * s as f64
            };
            let bar_x = if stacked { x } else { label_width };
            let _ = write!(
                out,
                "<rect x=\"{bar_x:.1}\" y=\"{bar_y:.1}\" width=\"{length:.1}\" height=\"{}\" \
fill=\"{}\"><title>{}: {}{unit}</title></rect>",
                bar - 2.0,
                PALETTE[s % PALETTE.len()],
                escape(&format!("{category} – {}", one.name)),
                number(value),
            );
            if stacked {
                x += length;
                total += value;
            } else {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{}{unit}</text>",
                    label_width + length + 4.0,
                    bar_y + bar - 4.0,
                    number(value)
                );
            }
        }
        if stacked {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}{unit}</text>",
                x + 4.0,
                y + 4.0 + bar - 4.0,
                number(total)
            );
        }
    }
    close_chart(out, series, height - 8.0);
}

/// Vertical columns over `labels` (a histogram, or time buckets), several series stacked.
fn columns(out: &mut String, id: &str, title: &str, labels: &[String], series: &[Series<'_>]) {
    let height = 260.0;
    open_chart(out, id, title, height);
    let (left, right, top, bottom) = (50.0, 10.0, 10.0, 70.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = (0..labels.len())
        .map(|n| {
            series
                .iter()
                .map(|s| s.values.get(n).copied().unwrap_or(0.0))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    let scale_top = axis_top(max, true);
    y_axis(out, left, top, plot_w, plot_h, scale_top, "");
    let slot = plot_w / labels.len().max(1) as f64;
    for (n, label) in labels.iter().enumerate() {
        let x = left + slot * n as f64;
        let mut base = top + plot_h;
        for (s, one) in series.iter().enumerate() {
            let value = one.values.get(n).copied().unwrap_or(0.0);
            let h = value / scale_top * plot_h;
            base -= h;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{base:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
<title>{}: {}</title></rect>",
                x + slot * 0.1,
                slot * 0.8,
                PALETTE[s % PALETTE.len()],
                escape(&format!("{label} – {}", one.name)),
                number(value)
            );
        }
        x_label(out, x + slot / 2.0, top + plot_h, label, labels.len(), n);
    }
    close_chart(out, series, height - 8.0);
}

/// Lines over `labels` (time buckets); a point with no value (`NaN`) breaks the line.
fn lines(
    out: &mut String,
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    unit: &str,
) {
    let height = 260.0;
    open_chart(out, id, title, height);
    let (left, right, top, bottom) = (60.0, 10.0, 10.0, 70.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    // Counts are whole; times (with a unit) need not be.
    let scale_top = axis_top(max, unit.is_empty());
    y_axis(out, left, top, plot_w, plot_h, scale_top, unit);
    let slot = plot_w / labels.len().max(1) as f64;
    for (s, one) in series.iter().enumerate() {
        let colour = PALETTE[s % PALETTE.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (n, value) in one.values.iter().enumerate() {
            if !value.is_finite() {
                pen_down = false;
                continue;
            }
            let x = left + slot * (n as f64 + 0.5);
            let y = top + plot_h - value / scale_top * plot_h;
            let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{}: {}{unit}</title></circle>",
                escape(&format!("{} – {}", labels[n], one.name)),
                number(*value)
            );
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                path.trim_end()
            );
        }
    }
    for (n, label) in labels.iter().enumerate() {
        x_label(
            out,
            left + slot * (n as f64 + 0.5),
            top + plot_h,
            label,
            labels.len(),
            n,
        );
    }
    close_chart(out, series, height - 8.0);
}

fn y_axis(
    out: &mut String,
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    scale_top: f64,
    unit: &str,
) {
    for step in 0..=4 {
        let value = scale_top * f64::from(step) / 4.0;
        let y = top + plot_h - plot_h * f64::from(step) / 4.0;
        let _ = write!(
            out,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            left + plot_w,
            left - 4.0,
            y + 4.0,
            number(value)
        );
    }
}

/// A label under column `n` of `count`; with many columns only some are labelled.
fn x_label(out: &mut String, x: f64, y: f64, label: &str, count: usize, n: usize) {
    let every = count.div_ceil(16).max(1);
    if n % every != 0 {
        return;
    }
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-40 {x:.1} {:.1})\">{}</text>",
        y + 14.0,
        y + 14.0,
        escape(label)
    );
}

fn shorten(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(most - 1).collect();
    short.push('…');
    short
}

/// A row of the summary table; `key` names the figure as `audit stats --json` does.
fn summary_row(out: &mut String, key: &str, label: &str, value: &str) {
    let _ = writeln!(
        out,
        "<tr data-key=\"{}\"><th>{}</th><td class=\"n\">{}</td></tr>",
        escape(key),
        escape(label),
        escape(value)
    );
}

fn percentiles_cells(p: &Percentiles) -> String {
    format!(
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
        p.count,
        escape(&millis(p.p50_ms)),
        escape(&millis(p.p90_ms)),
        escape(&millis(p.max_ms))
    )
}

impl Report {
    /// The report as one self-contained HTML page: inline CSS and inline SVG charts, no
    /// script and no reference to any other resource. Every string from the log is escaped.
    /// The same report gives the same bytes.
    pub fn to_html(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let stats = &self.stats;
        let span = match (self.first_recorded_at, self.last_recorded_at) {
            (Some(first), Some(last)) => format!(
                "from {} to {}",
                format_recorded_at(first).unwrap_or_default(),
                format_recorded_at(last).unwrap_or_default()
            ),
            _ => "an empty log".to_owned(),
        };
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Handover audit report</title><style>{STYLE}</style></head><body>\n\
<h1>Handover audit report</h1>\n<p>{} events, {}.</p>\n",
            stats.events,
            escape(&span)
        );

        out.push_str("<h2>Summary</h2>\n<table id=\"summary\">\n");
        let count = |n: u64| n.to_string();
        summary_row(&mut out, "events", "Events", &count(stats.events));
        summary_row(
            &mut out,
            "conversations_opened",
            "Conversations opened",
            &count(stats.conversations_opened),
        );
        summary_row(
            &mut out,
            "conversations_closed",
            "Conversations closed",
            &count(stats.conversations_closed),
        );
        summary_row(
            &mut out,
            "handoffs",
            "Handoffs to AI agents",
            &count(stats.handoffs),
        );
        summary_row(
            &mut out,
            "reclaims",
            "Reclaims by humans",
            &count(stats.reclaims),
        );
        summary_row(
            &mut out,
            "escalations.total",
            "Escalations to humans",
            &count(stats.escalations.total),
        );
        for (cause, n) in causes(stats) {
            summary_row(
                &mut out,
                &format!("escalations.{cause}"),
                &format!("Escalations: {}", cause.replace('_', " ")),
                &count(n),
            );
        }
        for (rule, n) in &stats.escalations_by_rule {
            summary_row(
                &mut out,
                &format!("escalations_by_rule.{rule}"),
                &format!("Escalations by rule {rule}"),
                &count(*n),
            );
        }
        let c = &self.containment;
        summary_row(
            &mut out,
            "containment.ai_handled",
            "AI-handled conversations",
            &count(c.ai_handled),
        );
        summary_row(
            &mut out,
            "containment.contained",
            "Contained by AI",
            &count(c.contained),
        );
        summary_row(
            &mut out,
            "containment.went_back",
            "Went back to a human",
            &count(c.went_back),
        );
        summary_row(
            &mut out,
            "containment.undecided",
            "Still with an AI agent",
            &count(c.undecided),
        );
        summary_row(
            &mut out,
            "containment.rate",
            "AI containment",
            &percent(c.rate),
        );
        summary_row(
            &mut out,
            "sla_warnings",
            "SLA warnings",
            &count(stats.sla_warnings),
        );
        summary_row(
            &mut out,
            "sla_breaches",
            "SLA breaches",
            &count(stats.sla_breaches),
        );
        summary_row(
            &mut out,
            "ai_reply_timeouts",
            "AI reply timeouts",
            &count(stats.ai_reply_timeouts),
        );
        summary_row(
            &mut out,
            "waits.count",
            "Waits for a human answered",
            &count(self.wait_ms.count),
        );
        summary_row(
            &mut out,
            "waits.p50",
            "Wait for a human, median",
            &millis(self.wait_ms.p50_ms),
        );
        summary_row(
            &mut out,
            "waits.p90",
            "Wait for a human, 90th percentile",
            &millis(self.wait_ms.p90_ms),
        );
        summary_row(
            &mut out,
            "escalation_to_human_ms.p50",
            "Escalation to a human, median",
            &millis(stats.escalation_to_human_ms.p50_ms),
        );
        out.push_str("</table>\n");

        out.push_str(
            "<h2>Definitions</h2>\n<dl class=\"note\">\
<dt>Handoff</dt><dd>A human handed a conversation to an AI agent (<code>handed_off_to_ai</code>).</dd>\
<dt>Escalation</dt><dd>A conversation went back from an AI agent to humans (<code>escalated_to_human</code>), by cause, and by rule when a rule of the escalation policy decided it.</dd>\
<dt>AI containment</dt><dd>Of the AI-handled conversations (handed off to an AI agent at least once), the share closed while an AI agent held them without ever going back to a human (no escalation, no reclaim), among those decided: contained ones and those that went back. Conversations still open with an AI agent that never went back are not decided yet and are left out. Per AI agent, containment counts handoffs instead: of the handoffs to it that ended, the share that ended with the conversation closed while it held it.</dd>\
<dt>Wait for a human</dt><dd>From the <code>since</code> of an <code>awaiting_human</code> (the first one not answered yet; a transfer to another queue does not restart it) to the <code>at</code> of the <code>human_assigned</code> that answered it, whatever the cause of the wait. Waits nobody answered are not counted.</dd>\
<dt>AI reply time</dt><dd>From the record of the customer's message that left a reply pending (the first, when several wait) to the record of the AI agent's next message, by the log's recorded times.</dd>\
<dt>Time buckets</dt><dd>By the records' <code>recorded_at</code>, in UTC, of equal width.</dd>\
<dt>Team</dt><dd>The queue a conversation waits in when it needs a human; &ldquo;general queue&rdquo; is a tenant's queue without a team.</dd></dl>\n",
        );

        let width = self.timeline.bucket_micros;
        let labels: Vec<String> = self
            .timeline
            .buckets
            .iter()
            .map(|bucket| bucket_label(bucket, width, self.timeline.buckets.len()))
            .collect();
        let of = |f: fn(&TimeBucket) -> f64| -> Vec<f64> {
            self.timeline.buckets.iter().map(f).collect()
        };
        let bucket_width = if width > 0 {
            format_duration(width)
        } else {
            "–".to_owned()
        };

        let _ = writeln!(
            out,
            "<h2>Handoffs and escalations</h2>\n<p class=\"note\">Per bucket of {}.</p>",
            escape(&bucket_width)
        );
        lines(
            &mut out,
            "chart-handoffs",
            "Handoffs, escalations and contained closes over time",
            &labels,
            &[
                Series {
                    name: "handoffs",
                    values: of(|b| b.handoffs as f64),
                },
                Series {
                    name: "escalations",
                    values: of(|b| b.escalations as f64),
                },
                Series {
                    name: "closed by AI",
                    values: of(|b| b.contained as f64),
                },
            ],
            "",
        );
        let (names, values): (Vec<String>, Vec<f64>) = causes(stats)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(cause, n)| (cause.replace('_', " "), n as f64))
            .unzip();
        bars(
            &mut out,
            "chart-causes",
            "Escalations by cause",
            &names,
            &[Series {
                name: "escalations",
                values,
            }],
            false,
            "",
        );
        let (names, values): (Vec<String>, Vec<f64>) = stats
            .escalations_by_rule
            .iter()
            .map(|(rule, n)| (rule.clone(), *n as f64))
            .unzip();
        bars(
            &mut out,
            "chart-rules",
            "Escalations by rule",
            &names,
            &[Series {
                name: "escalations",
                values,
            }],
            false,
            "",
        );

        out.push_str("<h3>Most frequent escalation reasons</h3>\n<table id=\"reasons\"><tr><th>Reason</th><th>Escalations</th></tr>\n");
        for (reason, n) in &self.escalation_reasons {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
                escape(reason)
            );
        }
        out.push_str("</table>\n");

        let _ = writeln!(
            out,
            "<h2>AI containment</h2>\n<p>{} of {} decided AI-handled conversations contained ({}); {} went back to a human, {} are still with an AI agent.</p>",
            c.contained,
            c.contained + c.went_back,
            escape(&percent(c.rate)),
            c.went_back,
            c.undecided
        );
        let agent_names: Vec<String> = self
            .agents
            .iter()
            .map(|agent| format!("{} ({})", agent.name, agent.agent_id))
            .collect();
        bars(
            &mut out,
            "chart-containment",
            "AI containment by AI agent (share of ended handoffs)",
            &agent_names,
            &[Series {
                name: "contained",
                values: self
                    .agents
                    .iter()
                    .map(|a| a.containment_rate.unwrap_or(0.0) * 100.0)
                    .collect(),
            }],
            false,
            "%",
        );
        bars(
            &mut out,
            "chart-agents",
            "Handoffs by AI agent and how they ended",
            &agent_names,
            &[
                Series {
                    name: "contained",
                    values: self.agents.iter().map(|a| a.contained as f64).collect(),
                },
                Series {
                    name: "escalated",
                    values: self.agents.iter().map(|a| a.escalated as f64).collect(),
                },
                Series {
                    name: "reclaimed",
                    values: self.agents.iter().map(|a| a.reclaimed as f64).collect(),
                },
                Series {
                    name: "not ended",
                    values: self
                        .agents
                        .iter()
                        .map(|a| {
                            a.handoffs
                                .saturating_sub(a.contained + a.escalated + a.reclaimed)
                                as f64
                        })
                        .collect(),
                },
            ],
            true,
            "",
        );
        out.push_str(
            "<table id=\"agents\"><tr><th>AI agent</th><th>Id</th><th>Handoffs</th><th>Contained</th>\
<th>Escalated</th><th>Reclaimed</th><th>Containment</th><th>Reply timeouts</th><th>Replies</th>\
<th>Reply p50</th><th>Reply p90</th><th>Reply max</th><th>Escalations by cause</th></tr>\n",
        );
        for agent in &self.agents {
            let by_cause: Vec<String> = agent
                .escalations_by_cause
                .iter()
                .map(|(cause, n)| format!("{} {n}", cause.replace('_', " ")))
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}<td>{}</td></tr>",
                escape(&agent.name),
                escape(&agent.agent_id),
                agent.handoffs,
                agent.contained,
                agent.escalated,
                agent.reclaimed,
                escape(&percent(agent.containment_rate)),
                agent.reply_timeouts,
                percentiles_cells(&agent.reply_ms),
                escape(&by_cause.join(", "))
            );
        }
        out.push_str("</table>\n");

        out.push_str("<h2>Waits for a human</h2>\n");
        let mut bins = Vec::with_capacity(self.waits.counts.len());
        let mut lower = 0;
        for bound in &self.waits.bounds_ms {
            bins.push(format!("{}–{}", bound_label(lower), bound_label(*bound)));
            lower = *bound;
        }
        bins.push(format!("≥ {}", bound_label(lower)));
        columns(
            &mut out,
            "chart-waits",
            "Waits for a human (histogram)",
            &bins,
            &[Series {
                name: "waits",
                values: self.waits.counts.iter().map(|n| *n as f64).collect(),
            }],
        );
        let team_names: Vec<String> = self
            .teams
            .iter()
            .map(|team| {
                team.team
                    .clone()
                    .unwrap_or_else(|| "general queue".to_owned())
            })
            .collect();
        out.push_str(
            "<table id=\"teams\"><tr><th>Team</th><th>Conversations</th><th>Handoffs</th><th>Escalations</th>\
<th>SLA warnings</th><th>SLA breaches</th><th>Waits</th><th>Wait p50</th><th>Wait p90</th><th>Wait max</th></tr>\n",
        );
        for (team, name) in self.teams.iter().zip(&team_names) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>",
                escape(name),
                team.conversations,
                team.handoffs,
                team.escalations,
                team.sla_warnings,
                team.sla_breaches,
                percentiles_cells(&team.wait_ms)
            );
        }
        out.push_str("</table>\n");

        out.push_str("<h2>SLA</h2>\n");
        lines(
            &mut out,
            "chart-sla",
            "SLA warnings and breaches over time",
            &labels,
            &[
                Series {
                    name: "warnings",
                    values: of(|b| b.sla_warnings as f64),
                },
                Series {
                    name: "breaches",
                    values: of(|b| b.sla_breaches as f64),
                },
            ],
            "",
        );
        bars(
            &mut out,
            "chart-sla-teams",
            "SLA warnings and breaches by team",
            &team_names,
            &[
                Series {
                    name: "warnings",
                    values: self.teams.iter().map(|t| t.sla_warnings as f64).collect(),
                },
                Series {
                    name: "breaches",
                    values: self.teams.iter().map(|t| t.sla_breaches as f64).collect(),
                },
            ],
            false,
            "",
        );

        out.push_str("<h2>AI reply times</h2>\n");
        let seconds = |ms: Option<u64>| ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0);
        lines(
            &mut out,
            "chart-replies",
            "AI reply times over time (seconds)",
            &labels,
            &[
                Series {
                    name: "p50",
                    values: self
                        .timeline
                        .buckets
                        .iter()
                        .map(|b| seconds(b.ai_reply_ms.p50_ms))
                        .collect(),
                },
                Series {
                    name: "p90",
                    values: self
                        .timeline
                        .buckets
                        .iter()
                        .map(|b| seconds(b.ai_reply_ms.p90_ms))
                        .collect(),
                },
            ],
            "s",
        );
        columns(
            &mut out,
            "chart-timeouts",
            "AI reply timeouts over time",
            &labels,
            &[Series {
                name: "timeouts",
                values: of(|b| b.ai_reply_timeouts as f64),
            }],
        );

        out.push_str(
            "<p class=\"note\">Made by <code>handover audit report</code>.</p>\n</body></html>\n",
        );
        out
    }
}

/// The escalations by cause, by the names `audit stats --json` gives them.
fn causes(stats: &crate::Stats) -> Vec<(&'static str, u64)> {
    let e = &stats.escalations;
    vec![
        ("agent_requested", e.agent_requested),
        ("customer_asked_for_human", e.customer_asked_for_human),
        ("agent_deactivated", e.agent_deactivated),
        ("ai_timeout", e.ai_timeout),
        ("frustration", e.frustration),
        ("going_in_circles", e.going_in_circles),
        ("ai_could_not_answer", e.ai_could_not_answer),
        ("complaint", e.complaint),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(0.0, true), 4.0);
        assert_eq!(axis_top(3.0, true), 4.0);
        assert_eq!(axis_top(7.0, true), 8.0);
        assert_eq!(axis_top(12.0, true), 12.0);
        assert_eq!(axis_top(238.0, true), 240.0);
        assert!((axis_top(0.3, false) - 0.32).abs() < 1e-9);
    }

    #[test]
    fn an_empty_report_renders_every_chart_without_outside_references() {
        let html = Report::default().to_html();
        assert_eq!(html.matches("<svg").count(), CHARTS);
        assert_eq!(html.matches("<title id=").count(), CHARTS);
        assert_no_outside_reference(&html);
    }

    /// The charts every report has.
    pub(crate) const CHARTS: usize = 10;

    /// No `http://` or `https://` anywhere, no script, no link, no `url()`.
    pub(crate) fn assert_no_outside_reference(stripped: &str) {
        assert!(!stripped.contains("http://"), "{stripped}");
        assert!(!stripped.contains("https://"), "{stripped}");
        assert!(!stripped.contains("<script"), "a script in the report");
        assert!(!stripped.contains("<link"), "a link in the report");
        assert!(!stripped.contains("url("), "a url() in the report");
    }
}
