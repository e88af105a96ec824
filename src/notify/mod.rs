//! Telling a person: one message when a condition an admin must act on starts, a reminder while
//! it lasts, one when it ends — by chat webhook and email.
//!
//! Every `notify.check_interval` the [`Notifier`] takes [`crate::conditions::current`] (the same
//! list the status page's health line comes from) and compares it with what it told before,
//! which it keeps in the store: a condition is told once it has held `notify.min_duration`
//! (at once for the few that cannot be a flap; deliveries failing only after
//! `notify.failing_after`), again after `notify.repeat_after`, and "resolved" when it ends — a
//! condition that ended before it was told is never told. Events that die are told in batches,
//! one message per `notify.dead_window`.
//!
//! Messages wait in an outbox in the store and are sent from this task alone, so a channel that
//! is slow or failing never holds up ingestion or delivery; a failed send is tried again with a
//! growing delay for a day, and counted (`drsf_notifications_total{channel,outcome}`). Relays
//! sharing a PostgreSQL store notify one at a time, under a lease: each message is sent once.

pub mod channels;
pub mod message;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::conditions::{self, Condition, Inputs, Level};
use crate::delivery::TargetView;
use crate::metrics::Metrics;
use crate::settings::notify::NotifySettings;
use crate::store::Store;
use crate::store::StoreStats;
use crate::store::facts::WebhookSeen;
use crate::support::clock::Clock;
use message::{Message, MessageKind};

/// Where the notifier keeps what it told and what waits to be sent.
pub const STATE_KEY: &str = "notify.state";
const LEASE_KEY: &str = "notify.lease";
/// Notifications the status page lists.
pub const SENT_KEPT: usize = 20;
/// A message not sent within this long is given up.
const GIVE_UP_AFTER_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// What the notifier remembers between looks (JSON in the store's `relay_state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifierState {
    /// Conditions seen, by key.
    #[serde(default)]
    pub conditions: BTreeMap<String, Tracked>,
    /// The dead events counted at the last look (`None` before the first).
    #[serde(default)]
    pub dead_seen: Option<u64>,
    /// Events that died since `started_ms`, not yet told.
    #[serde(default)]
    pub dead_batch: Option<DeadBatch>,
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
    /// The last messages sent (or given up), newest last.
    #[serde(default)]
    pub sent: Vec<Sent>,
    /// When each channel was last sent to, within the last hour (`notify.max_per_hour`).
    #[serde(default)]
    pub sent_times: BTreeMap<String, Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked {
    pub since_ms: i64,
    pub headline: String,
    /// When it was last told (`None`: not yet, it may still be a flap).
    pub told_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadBatch {
    pub count: u64,
    pub started_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    pub channel: String,
    pub message: Message,
    pub attempts: u32,
    pub next_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub at_ms: i64,
    pub channel: String,
    pub title: String,
    /// `sent`, `gave_up` or `rate_limited`, with the channel's answer.
    pub outcome: String,
    pub answer: String,
}

/// What one look did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Another relay holds the lease.
    pub not_mine: bool,
    /// Messages put in the outbox (one per channel each).
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
}

#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn Store>,
    targets: Arc<[TargetView]>,
    settings: NotifySettings,
    /// The status page, for the messages' link.
    link: Option<String>,
    clock: Clock,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    holder: String,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        targets: Arc<[TargetView]>,
        settings: NotifySettings,
        link: Option<String>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            targets,
            settings,
            link,
            clock,
            metrics,
            http: crate::support::http::client_builder(std::time::Duration::from_secs(10)).build()?,
            holder: crate::reconcile::lease_holder(),
        })
    }

    /// One look: tells what changed, and sends what is due.
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> Result<Step, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let lease_until = now + self.settings.check_interval.as_millis() as i64 * 4 + 60_000;
        if !self.store.take_lease(LEASE_KEY, &self.holder, now, lease_until).await? {
            return Ok(Step {
                not_mine: true,
                ..Default::default()
            });
        }
        let mut state = load(&*self.store).await?;
        let before = state.clone();
        let mut step = Step::default();
        let (current, stats) = look(&*self.store, &self.targets, now).await;
        for message in self.decide(&mut state, &current, now) {
            step.queued += self.queue(&mut state, message, now);
        }
        if let Some(stats) = stats
            && let Some(message) = self.dead_events(&mut state, stats.dead, now)
        {
            step.queued += self.queue(&mut state, message, now);
        }
        self.send_due(&mut state, now, &mut step).await;
        if state != before {
            let json = serde_json::to_string(&state).expect("plain fields serialize");
            self.store.set_state(STATE_KEY, Some(json), now).await?;
        }
        Ok(step)
    }

    /// The messages the change from what was told to `current` calls for.
    fn decide(&self, state: &mut NotifierState, current: &[Condition], now: i64) -> Vec<Message> {
        let mut messages = Vec::new();
        let min_duration = self.settings.min_duration.as_millis() as i64;
        for condition in current.iter().filter(|c| c.notify) {
            let tracked = state
                .conditions
                .entry(condition.key.clone())
                .or_insert_with(|| Tracked {
                    since_ms: condition.since_ms.unwrap_or(now),
                    headline: condition.headline.clone(),
                    told_at_ms: None,
                });
            tracked.headline = condition.headline.clone();
            let hold = if condition.immediate {
                0
            } else if condition.key.starts_with("failing.") {
                min_duration.max(self.settings.failing_after.as_millis() as i64)
            } else {
                min_duration
            };
            let kind = match tracked.told_at_ms {
                None if now - tracked.since_ms >= hold => MessageKind::Started,
                Some(told) if now - told >= self.settings.repeat_after.as_millis() as i64 => MessageKind::Reminder,
                _ => continue,
            };
            tracked.told_at_ms = Some(now);
            messages.push(self.message(
                kind,
                condition.key.clone(),
                condition.level,
                &condition.headline,
                &condition.detail,
                tracked.since_ms,
                now,
            ));
        }
        let ended: Vec<String> = state
            .conditions
            .keys()
            .filter(|key| !current.iter().any(|c| c.notify && &c.key == *key))
            .cloned()
            .collect();
        for key in ended {
            let tracked = state.conditions.remove(&key).expect("listed");
            if tracked.told_at_ms.is_some() {
                let mut resolved = self.message(
                    MessageKind::Resolved,
                    key,
                    Level::Good,
                    &tracked.headline,
                    "",
                    tracked.since_ms,
                    now,
                );
                resolved.lasted_ms = Some(now - tracked.since_ms);
                messages.push(resolved);
            }
        }
        messages
    }

    /// Counts events that died since the last look; once a batch is `notify.dead_window` old, the
    /// one message that tells it.
    fn dead_events(&self, state: &mut NotifierState, dead: u64, now: i64) -> Option<Message> {
        let seen = state.dead_seen.replace(dead)?;
        if dead > seen {
            let batch = state.dead_batch.get_or_insert(DeadBatch {
                count: 0,
                started_ms: now,
            });
            batch.count += dead - seen;
        }
        let batch = state.dead_batch.as_ref()?;
        if now - batch.started_ms < self.settings.dead_window.as_millis() as i64 {
            return None;
        }
        let batch = state.dead_batch.take()?;
        let n = batch.count;
        let window = crate::support::text::age(self.settings.dead_window.as_millis() as i64);
        let mut message = self.message(
            MessageKind::DeadEvents,
            "dead_events".into(),
            Level::Warn,
            &format!("{n} event{} died in the last {window}", if n == 1 { "" } else { "s" }),
            "Salesforce refused them at every attempt, so their orders are not updated. Open the dead events to \
             see why, fix the cause, then send them again (`dr-sf-bridge events replay --status dead`).",
            batch.started_ms,
            now,
        );
        message.link = self.link.as_ref().map(|link| format!("{link}events?status=dead"));
        Some(message)
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        kind: MessageKind,
        key: String,
        level: Level,
        headline: &str,
        detail: &str,
        since_ms: i64,
        now: i64,
    ) -> Message {
        Message {
            kind,
            key,
            level,
            headline: headline.to_owned(),
            detail: detail.to_owned(),
            since_ms,
            lasted_ms: None,
            link: self.link.clone(),
            at_ms: now,
        }
    }

    /// Puts `message` in the outbox of every channel still under `notify.max_per_hour`.
    fn queue(&self, state: &mut NotifierState, message: Message, now: i64) -> usize {
        let mut queued = 0;
        for channel in &self.settings.channels {
            let times = state.sent_times.entry(channel.name.clone()).or_default();
            times.retain(|t| now - t < HOUR_MS);
            if times.len() >= self.settings.max_per_hour as usize {
                tracing::warn!(channel = %channel.name, title = %message.title(), "notification not sent: the channel had notify.max_per_hour messages in the last hour");
                self.count(&channel.name, "rate_limited");
                record(
                    state,
                    now,
                    &channel.name,
                    &message,
                    "rate_limited",
                    "over notify.max_per_hour",
                );
                continue;
            }
            times.push(now);
            state.outbox.push(Outgoing {
                channel: channel.name.clone(),
                message: message.clone(),
                attempts: 0,
                next_at_ms: now,
                last_error: None,
            });
            queued += 1;
        }
        queued
    }

    async fn send_due(&self, state: &mut NotifierState, now: i64, step: &mut Step) {
        let mut waiting = Vec::new();
        for mut outgoing in std::mem::take(&mut state.outbox) {
            let Some(channel) = self.settings.channels.iter().find(|c| c.name == outgoing.channel) else {
                continue; // the channel was removed from the configuration
            };
            if outgoing.next_at_ms > now {
                waiting.push(outgoing);
                continue;
            }
            let sent = channels::send(
                &self.http,
                channel,
                self.settings.signing_secret.as_ref(),
                &outgoing.message,
            )
            .await;
            match sent {
                Ok(answer) => {
                    step.sent += 1;
                    self.count(&channel.name, "sent");
                    record(state, now, &channel.name, &outgoing.message, "sent", &answer);
                }
                Err(error) => {
                    step.failed += 1;
                    self.count(&channel.name, "failed");
                    outgoing.attempts += 1;
                    if now - outgoing.message.at_ms >= GIVE_UP_AFTER_MS {
                        tracing::error!(channel = %channel.name, %error, "a notification could not be sent for a day: given up");
                        record(state, now, &channel.name, &outgoing.message, "gave_up", &error);
                        continue;
                    }
                    let delay = 30_000i64 << outgoing.attempts.min(5);
                    tracing::warn!(channel = %channel.name, %error, retry_in_secs = delay / 1000, "a notification could not be sent; trying again");
                    outgoing.next_at_ms = now + delay;
                    outgoing.last_error = Some(error);
                    waiting.push(outgoing);
                }
            }
        }
        state.outbox = waiting;
    }

    fn count(&self, channel: &str, outcome: &'static str) {
        self.metrics.notification(channel, outcome);
    }

    /// Looks every `notify.check_interval` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.check_interval) => {}
            }
            match self.step().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if crate::reconcile::worth_logging(failures) {
                        tracing::warn!(error = %e, "notifications: could not read or keep their state; trying again");
                    }
                }
            }
        }
    }
}

fn record(state: &mut NotifierState, now: i64, channel: &str, message: &Message, outcome: &str, answer: &str) {
    state.sent.push(Sent {
        at_ms: now,
        channel: channel.to_owned(),
        title: message.title(),
        outcome: outcome.to_owned(),
        answer: answer.to_owned(),
    });
    if state.sent.len() > SENT_KEPT {
        let extra = state.sent.len() - SENT_KEPT;
        state.sent.drain(..extra);
    }
}

/// What the notifier keeps in `store` (empty before its first look).
pub async fn load(store: &dyn Store) -> Result<NotifierState, crate::store::StoreError> {
    Ok(store
        .state(STATE_KEY)
        .await?
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or_default())
}

/// The conditions of the relay with `targets` beside `store`, now, and the store's counts they
/// were computed from (`None` when the store could not answer).
async fn look(store: &dyn Store, targets: &[TargetView], now_ms: i64) -> (Vec<Condition>, Option<StoreStats>) {
    let stats = store.stats().await;
    let mut snapshots = Vec::with_capacity(targets.len());
    let mut webhooks = Vec::with_capacity(targets.len());
    for target in targets {
        snapshots.push(target.snapshot().await);
        webhooks.push(WebhookSeen::recall(store, target.mode()).await.ok().flatten());
    }
    let current = conditions::current(&Inputs {
        store: stats.as_ref().map_err(|e| e.to_string()),
        targets: &snapshots,
        webhooks: &webhooks,
        disk: store.disk_space(),
        now_ms,
    });
    (current, stats.ok())
}

/// One channel's answer to `notify test`.
#[derive(Debug, Clone, Serialize)]
pub struct TestAnswer {
    pub channel: String,
    pub ok: bool,
    pub answer: String,
}

/// Sends a test message to every channel (or the one named); answers what each said.
pub async fn test_channels(
    settings: &crate::settings::Settings,
    only: Option<&str>,
) -> Result<Vec<TestAnswer>, crate::ops::OpsError> {
    let notify = &settings.notify;
    let chosen: Vec<_> = notify
        .channels
        .iter()
        .filter(|c| only.is_none_or(|name| c.name == name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = notify.channels.iter().map(|c| c.name.as_str()).collect();
        return Err(crate::ops::OpsError::Refused(match only {
            Some(name) => format!("no channel `{name}` (configured: {})", names.join(", ")),
            None => "no notification channel is configured: add a [notify.channels.<name>] table".into(),
        }));
    }
    let http = crate::support::http::client_builder(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| crate::ops::OpsError::Refused(e.to_string()))?;
    let now = crate::support::clock::now_ms();
    let message = Message {
        kind: MessageKind::Test,
        key: "test".into(),
        level: Level::Good,
        headline: "Test message".into(),
        detail: String::new(),
        since_ms: now,
        lasted_ms: None,
        link: settings
            .relay
            .public_url
            .as_ref()
            .map(|url| url.join_path(crate::http::paths::UI_HOME)),
        at_ms: now,
    };
    let mut answers = Vec::new();
    for channel in chosen {
        let sent = channels::send(&http, channel, notify.signing_secret.as_ref(), &message).await;
        answers.push(TestAnswer {
            channel: channel.name.clone(),
            ok: sent.is_ok(),
            answer: sent.unwrap_or_else(|e| e),
        });
    }
    Ok(answers)
}
