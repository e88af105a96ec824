//! The overview: one line of health a non-engineer understands, then the last day's traffic, the
//! events by status, and each Salesforce org's state (sign-in, breaker, pacing, API usage, the
//! DR webhook as `check` last saw it).

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, PreEscaped, html};

use super::layout::{age, page, prose, when, wrapped};
use super::{SignedIn, layout, paths};
use crate::conditions::{self, Condition, Inputs};
use crate::delivery::TargetSnapshot;
use crate::http::state::AppState;
use crate::salesforce::{GrantType, PASSWORD_FLOW_ENDS, PASSWORD_FLOW_WAYS_OUT};
use crate::store::facts::{SalesforceSweep, WebhookSeen};
use crate::store::{ActivityBucket, StoreStats};
use crate::support::clock::now_ms;

const HOUR_MS: i64 = 3_600_000;

pub use crate::conditions::Level;

/// The one line at the top, and a sentence on what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub level: Level,
    pub headline: String,
    pub detail: String,
}

impl Health {
    /// The worst condition that holds (see [`crate::conditions::current`]), or all good.
    pub fn of(conditions: &[Condition]) -> Self {
        match conditions.first() {
            Some(worst) => Self {
                level: worst.level,
                headline: worst.headline.clone(),
                detail: worst.detail.clone(),
            },
            None => Self {
                level: Level::Good,
                headline: "All good: orders reach Salesforce".into(),
                detail: "No failures, nothing stuck.".into(),
            },
        }
    }
}

pub(super) async fn show(State(state): State<AppState>, Extension(signed_in): Extension<SignedIn>) -> Response {
    let now = now_ms();
    let store = &*state.store;
    let (stats, activity) = tokio::join!(store.stats(), store.activity(now - 24 * HOUR_MS, HOUR_MS, 24));
    let activity = activity.unwrap_or_default();
    let mut snapshots = Vec::with_capacity(state.targets.len());
    let mut webhooks = Vec::with_capacity(state.targets.len());
    let mut sweeps = Vec::with_capacity(state.targets.len());
    for target in state.targets.iter() {
        snapshots.push(target.snapshot().await);
        webhooks.push(WebhookSeen::recall(store, target.mode()).await.ok().flatten());
        sweeps.push(SalesforceSweep::recall(store, target.mode()).await.ok().flatten());
    }
    let current = conditions::current(&Inputs {
        store: stats.as_ref().map_err(|e| e.to_string()),
        targets: &snapshots,
        webhooks: &webhooks,
        disk: store.disk_space(),
        now_ms: now,
    });
    let health = Health::of(&current);
    let notified = crate::notify::load(store).await.unwrap_or_default();
    let content = html! {
        div class={ "health " (health.level.class()) } id="health" role="status" {
            (prose(&health.headline))
            small { (prose(&health.detail)) }
        }
        (traffic(&activity))
        @if current.len() > 1 { (conditions_list(&current, now)) }
        @if let Ok(stats) = &stats { (by_status(stats, now)) }
        h2 { "Salesforce" }
        @for ((target, seen), sweep) in snapshots.iter().zip(&webhooks).zip(&sweeps) {
            (target_panel(target, seen.as_ref(), sweep.as_ref(), now))
        }
        @if !notified.sent.is_empty() { (notifications(&notified.sent)) }
    };
    Html(page("Overview", Some(&signed_in.csrf), content).into_string()).into_response()
}

/// Every condition that holds (the health line shows the worst).
fn conditions_list(current: &[Condition], now: i64) -> Markup {
    html! {
        h2 { "Conditions now" }
        ul #conditions {
            @for condition in current {
                li class=(condition.level.class()) {
                    (prose(&condition.headline))
                    @if let Some(since) = condition.since_ms.filter(|_| !condition.headline.contains(" since ")) { span.muted { " — since " (age(now - since)) } }
                }
            }
        }
    }
}

/// The last notifications sent (or not), newest first.
fn notifications(sent: &[crate::notify::Sent]) -> Markup {
    html! {
        h2 { "Notifications" }
        div.scroll { table.rows #notifications {
            thead { tr { th { "When" } th { "Channel" } th { "Message" } th { "Outcome" } } }
            tbody {
                @for n in sent.iter().rev() {
                    tr {
                        td data-label="When" { (when(n.at_ms)) }
                        td data-label="Channel" { (n.channel) }
                        td data-label="Message" { (prose(&n.title)) }
                        td.said data-label="Outcome" { (n.outcome.replace('_', " ")) ": " (wrapped(&n.answer)) }
                    }
                }
            }
        } }
    }
}

fn traffic(activity: &[ActivityBucket]) -> Markup {
    let hour = activity.last().copied().unwrap_or_default();
    let day = activity
        .iter()
        .fold((0, 0), |(r, d), b| (r + b.received, d + b.delivered));
    html! {
        div.cards {
            div.card { b #received-hour { (hour.received) } span { "received, last hour" } }
            div.card { b #delivered-hour { (hour.delivered) } span { "delivered, last hour" } }
            div.card { b #received-day { (day.0) } span { "received, last 24 h" } }
            div.card { b #delivered-day { (day.1) } span { "delivered, last 24 h" } }
        }
        div.panel.chart {
            (chart(activity))
            div.legend { i style="background:#8fb3d1" {} "received" i style="background:#1e8a4c" {} "delivered" " · one bar pair an hour, the newest on the right" }
            p.muted #counted-from { "Counted from the events stored now: events deleted by " code { "events purge" } " or after " code { "storage.retention_days" } " are no longer counted." }
        }
    }
}

/// Received and delivered per hour as paired bars: plain SVG, scaled to the busiest hour.
pub fn chart(activity: &[ActivityBucket]) -> Markup {
    const WIDTH: usize = 720;
    const HEIGHT: u64 = 120;
    let top = activity
        .iter()
        .map(|b| b.received.max(b.delivered))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / activity.len().max(1);
    let bar = (slot.saturating_sub(4) / 2).max(1);
    let height = |n: u64| (n * HEIGHT).div_ceil(top);
    let mut bars = String::new();
    for (i, bucket) in activity.iter().enumerate() {
        let x = i * slot + 2;
        for (offset, count, colour) in [(0, bucket.received, "#8fb3d1"), (bar, bucket.delivered, "#1e8a4c")] {
            let h = height(count);
            bars.push_str(&format!(
                r#"<rect x="{}" y="{}" width="{bar}" height="{h}" fill="{colour}"><title>{count}</title></rect>"#,
                x + offset,
                HEIGHT - h + 4
            ));
        }
    }
    html! {
        svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 22) } role="img" aria-label="Events received and delivered per hour, last 24 hours" {
            line x1="0" y1=(HEIGHT + 4) x2=(WIDTH) y2=(HEIGHT + 4) stroke="#b9c4cf" {}
            (PreEscaped(bars))
            text x="0" y=(HEIGHT + 20) font-size="11" fill="#5a6876" { "24 h ago" }
            text x=(WIDTH) y=(HEIGHT + 20) font-size="11" fill="#5a6876" text-anchor="end" { "now (busiest hour: " (top) ")" }
        }
    }
}

fn by_status(stats: &StoreStats, now: i64) -> Markup {
    let counts = stats.by_status();
    html! {
        h2 { "Stored events" }
        div.cards {
            @for (status, count) in counts {
                a.card href={ (paths::UI_EVENTS) "?status=" (status.as_str()) } id={ "count-" (status.as_str()) } {
                    b { (count) } span { (layout::badge(status.as_str())) }
                }
            }
            div.card {
                b #oldest-pending {
                    @match stats.oldest_pending_received_at_ms { Some(t) => (age(now - t)), None => "—" }
                }
                span { "oldest pending" }
            }
        }
        @if stats.dead > 0 {
            p { a.button href=(paths::UI_REPLAY_DEAD) { "Send dead events again…" } }
        }
    }
}

/// The org an Apex REST address belongs to: `https://acme.my.salesforce.com`.
fn org_of(webhook_url: &str) -> String {
    url::Url::parse(webhook_url)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_else(|_| webhook_url.to_owned())
}

fn target_panel(
    target: &TargetSnapshot,
    seen: Option<&WebhookSeen>,
    sweep: Option<&SalesforceSweep>,
    now: i64,
) -> Markup {
    let observed = &target.observed;
    html! {
        div.panel id={ "target-" (target.mode) } {
            dl {
                dt { "Org" } dd { (org_of(&target.webhook_url)) " (" (target.mode) " mode)" }
                dt { "Sign-in" } dd {
                    @if let Some(refusal) = &target.sign_in_refused { "refused: " (refusal) }
                    @else if target.grants == 0 { (target.grant) " grant, not signed in yet (signs in at the first delivery)" }
                    @else { (target.grant) " grant, signed in (" (target.grants) " token" @if target.grants != 1 { "s" } " since start)" }
                }
                dt { "Deliveries" } dd {
                    @if target.breaker_open { "paused after repeated failures (circuit breaker open); a trial delivery decides when to resume" }
                    @else if let Some(cause) = target.paused { "paused: " (cause.as_str().replace('_', " ")) }
                    @else {
                        "flowing, up to " (target.concurrency) " at once now"
                        @if target.concurrency < target.max_in_flight { " (at most " (target.max_in_flight) ", salesforce.max_in_flight)" }
                    }
                    @if let Some(last) = observed.last_delivered_ms { " · last delivered " (age(now - last)) " ago" }
                }
                dt { "API usage" } dd {
                    @match observed.api_usage {
                        Some((usage, at)) => {
                            (usage.used) " of " (usage.max) " daily requests"
                            @if usage.max > 0 { " (" (usage.used * 100 / usage.max) "%)" }
                            " · as of " (when(at))
                        }
                        None => "not seen yet (Salesforce reports it with each delivery)",
                    }
                }
                dt { "DR webhook" } dd {
                    @match seen {
                        Some(seen) => {
                            @if seen.ok { "✓ " } @else { "✗ " }
                            (prose(&seen.detail)) span.muted { " — as " code { "check" } " saw it " (age(now - seen.checked_at_ms)) " ago" }
                        }
                        None => span.muted { "not checked yet: run " code { "dr-sf-bridge check" } " on the server" },
                    }
                }
                dt { "DR failure records" } dd #failure-records { (failure_records(sweep, now)) }
            }
            @if target.grant == GrantType::Password.as_str() {
                p.notice id={ "password-flow-" (target.mode) } {
                    b { "The password sign-in ends: " } (prose(PASSWORD_FLOW_ENDS)) ". To keep orders flowing, " (prose(PASSWORD_FLOW_WAYS_OUT)) "."
                }
            }
            @if let Some(sweep) = sweep.filter(|s| !s.unknown.is_empty()) {
                p id="unknown-failures" {
                    (sweep.unknown.len()) " DR Failed Event record" @if sweep.unknown.len() != 1 { "s" }
                    " in the org name events this relay never received (DR posted them straight to the org, or before the relay existed). Look them up in Salesforce:"
                }
                div.scroll { table.rows {
                    thead { tr { th { "Record" } th { "Event" } th { "Created" } th { "Reason" } } }
                    tbody {
                        @for unknown in sweep.unknown.iter().rev() {
                            tr {
                                td.nowrap data-label="Record" { (unknown.record_id) @if unknown.processed { " (processed)" } }
                                td data-label="Event" { (unknown.event_id.as_deref().unwrap_or("—")) " " (unknown.event_type.as_deref().unwrap_or("")) }
                                td data-label="Created" { (when(unknown.created_ms)) }
                                td.said data-label="Reason" { (wrapped(&unknown.reason)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// The last sweep of the org's DR failure records, in a line.
fn failure_records(sweep: Option<&SalesforceSweep>, now: i64) -> Markup {
    html! {
        @match sweep {
            None => span.muted { "not read yet (the relay reads them every confirm.interval_secs)" },
            Some(SalesforceSweep { error: Some(error), swept_at_ms, .. }) => {
                "✗ " (wrapped(error)) span.muted { " — " (age(now - swept_at_ms)) " ago; deliveries go on" }
            }
            Some(sweep) => {
                "✓ read " (age(now - sweep.swept_at_ms)) " ago"
            }
        }
    }
}

#[cfg(test)]
mod tests;
