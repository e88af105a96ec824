//! The delivery worker: claims due events from the store and delivers each to Salesforce.
//!
//! There is one worker per Salesforce target, and it claims only its own DR mode's events: each
//! target has its own token, circuit breaker and in-flight limit, so a sandbox that is down
//! neither takes production's slots nor opens production's breaker.
//!
//! Ordering comes from the store (it hands out only the first pending event of each order), so
//! the worker is free to run as many deliveries in parallel as its target's pacer allows (at most
//! `max_in_flight` requests to the org at once) — different orders proceed side by side, one
//! order's events one after the other. A delivery frees its slot when Salesforce answers, not
//! when its outcome is committed: the commit's disk flush is the store's time, not the org's.
//! Claims carry a lease longer than the longest delivery, so if this process dies its events
//! become claimable again.
//!
//! The worker sleeps until there is something to do: an ingest wakes it, a finished delivery
//! wakes it (a successor may now be due), a slot freed by Salesforce's answer wakes it if it waits
//! for one, and otherwise it looks again after `poll_interval` or when the next retry falls due,
//! whichever is sooner. Each wake is a claim, a transaction on the store, so nothing wakes it for
//! nothing: at DR's usual trickle, wake-ups that found nothing to claim were most of the writer's
//! transactions, and an event that came in behind one waited for it.
//!
//! [`Worker::run`] is a loop over [`Worker::claim_round`]; tests drive the same rounds through
//! [`Worker::deliver_due`] with the loop off, so what they prove is what production runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::breaker::BreakerChange;
use super::pacing::{Looked, PauseCause, Permit, Signal};
use super::target::Target;
use crate::domain::EventId;
use crate::salesforce::{DeliveryAttempt, DeliveryOutcome};
use crate::store::{AttemptRecord, ClaimedEvent, Store, StoreError, Transition};
use crate::support::http::{Backoff, Failure, retry};

/// The loop that delivers one target's events. Cheap to clone: every clone shares the target,
/// its slots and its in-flight list.
#[derive(Clone)]
pub struct Worker {
    target: Arc<Target>,
    store: Arc<dyn Store>,
    /// Rung when an event is stored or replayed, and when a slot frees while the loop waits for one.
    wake: Arc<Notify>,
    /// How long the loop sleeps when nothing wakes it.
    poll_interval: Duration,
    /// One per request in flight to the org (`max_in_flight`): held from the claim until
    /// Salesforce answers.
    slots: Arc<Semaphore>,
    /// One per outcome being recorded (`max_in_flight` too): a delivery frees the org's slot as
    /// soon as Salesforce answers, and the store's pace still bounds how many wait to be recorded.
    recording: Arc<Semaphore>,
    /// Whether the loop may be waiting for a slot: set before a round counts the free slots,
    /// cleared when a round claims fewer events than it asked for (the queue ran dry, so a freed
    /// slot would start nothing). Only while it is set does Salesforce's answer wake the loop.
    wants_slots: Arc<AtomicBool>,
    /// What a shutdown must name and release if it cuts deliveries short.
    in_flight: Arc<Mutex<HashMap<i64, EventId>>>,
    /// Claims that failed in a row, so that a store that is down is logged once, not per poll.
    store_failures: Arc<AtomicU32>,
}

/// What one claim round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Started this many deliveries (all there were room for: there may be more due).
    Started { started: usize, more: bool },
    /// Asked the org's API usage (before the first delivery, or at the end of a pause).
    Probed,
    /// Nothing may start before this long (the breaker or the pacer holds back, or the next
    /// retry is not due); `None`: until woken or the poll interval.
    Wait(Option<Duration>),
}

/// Recording an attempt is retried this often when the store is busy or unavailable.
const RECORD_RETRIES: Backoff = Backoff {
    retries: 2,
    base: Duration::from_millis(200),
};

impl Worker {
    pub fn new(target: Arc<Target>, store: Arc<dyn Store>, wake: Arc<Notify>, poll_interval: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(target.max_in_flight)),
            recording: Arc::new(Semaphore::new(target.max_in_flight)),
            wants_slots: Arc::default(),
            target,
            store,
            wake,
            poll_interval,
            in_flight: Arc::default(),
            store_failures: Arc::default(),
        }
    }

    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Delivers everything due now and waits for the outcomes: claim rounds until one starts
    /// nothing (a successor an outcome made due is delivered too). Answers how many deliveries
    /// were attempted. For tests and tools that drive the worker instead of [`Worker::run`]; the
    /// rounds are the very ones the loop runs.
    pub async fn deliver_due(&self) -> usize {
        let mut attempted = 0;
        loop {
            let mut tasks = JoinSet::new();
            match self.claim_round(&mut tasks).await {
                Round::Started { started: 0, .. } | Round::Wait(_) => break,
                Round::Probed => {}
                Round::Started { started, .. } => attempted += started,
            }
            while tasks.join_next().await.is_some() {}
        }
        attempted
    }

    /// Takes the loop's wake-up if one is waiting (rung while the loop was busy or stepped by a
    /// test): whether the loop would claim again at once. For tests of what rings it.
    pub fn take_wake(&self) -> bool {
        use futures_util::FutureExt;
        self.wake.notified().now_or_never().is_some()
    }

    /// Runs until `stop` is cancelled, then lets in-flight deliveries finish for at most
    /// `shutdown_timeout` and releases the leases of those that did not.
    pub async fn run(self, stop: CancellationToken, shutdown_timeout: Duration) {
        let mut tasks = JoinSet::new();
        while !stop.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let wait = match self.claim_round(&mut tasks).await {
                Round::Started { more: true, .. } | Round::Probed => Duration::ZERO,
                Round::Started { more: false, .. } => self.until_next_due().await,
                Round::Wait(wait) => wait.unwrap_or(self.poll_interval),
            }
            .min(self.poll_interval);
            let full = self.slots.available_permits() == 0;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(wait), if !(wait.is_zero() && full) => {}
            }
        }

        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "waiting for in-flight deliveries to finish");
        }
        let drained =
            tokio::time::timeout(shutdown_timeout, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            let unfinished: Vec<(i64, EventId)> = self
                .in_flight
                .lock()
                .expect("not poisoned")
                .iter()
                .map(|(seq, id)| (*seq, id.clone()))
                .collect();
            let ids: Vec<&str> = unfinished.iter().map(|(_, id)| id.as_str()).collect();
            tracing::warn!(
                unfinished = ?ids,
                "shutdown timeout reached: these deliveries were cut short; Salesforce may have received them, \
                 and they are sent again after the restart (delivery is at least once)"
            );
            let seqs = unfinished.into_iter().map(|(seq, _)| seq).collect();
            if let Err(e) = self.store.release(seqs).await {
                tracing::error!(error = %e, "could not release leases; they expire on their own");
            }
        }
    }

    /// One round: claims as many due events as there are free slots (and the breaker and the
    /// pacer allow) and starts their deliveries in `tasks`; each records its own attempt.
    pub async fn claim_round(&self, tasks: &mut JoinSet<()>) -> Round {
        let target = &self.target;
        if target.sign_in.take_recheck() {
            target.sign_in.sign_in_again().await;
            return Round::Probed;
        }
        let allowed = match target.breaker.permits() {
            Err(pause) => return Round::Wait(Some(pause)),
            Ok(allowed) => allowed,
        };
        let paced = match target.pacer.permits() {
            Permit::Start(paced) => paced,
            Permit::Wait(pause) => return Round::Wait(Some(pause)),
            Permit::Probe => {
                probe_usage(target).await;
                return Round::Probed;
            }
        };
        // Set before the count: a slot freed after it sees the flag and wakes the loop.
        self.wants_slots.store(true, Ordering::SeqCst);
        let free = self.slots.available_permits().min(paced);
        if free == 0 {
            // A delivery that finishes wakes the loop.
            return Round::Wait(None);
        }
        let want = free.min(allowed) as u32;
        let events = match self
            .store
            .claim_due(target.mode, target.clock.now_ms(), want, target.lease)
            .await
        {
            Ok(events) => events,
            Err(StoreError::Busy(reason)) => {
                tracing::debug!(%reason, "the store is busy; claiming again on the next poll");
                return Round::Wait(None);
            }
            Err(e) => {
                let failures = self.store_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::error!(error = %e, "cannot claim events from the store");
                }
                return Round::Wait(None);
            }
        };
        self.store_failures.store(0, Ordering::Relaxed);
        let started = events.len();
        if (started as u32) < want {
            self.wants_slots.store(false, Ordering::SeqCst);
        }
        for event in events {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            self.begin(&event);
            let worker = self.clone();
            let span = tracing::info_span!(
                "deliver",
                otel.kind = "client",
                mode = target.mode.as_str(),
                event_id = %event.id,
                event_type = %event.event_type,
                attempt = event.attempts + 1,
                http.response.status_code = tracing::field::Empty,
                outcome = tracing::field::Empty,
                counted = tracing::field::Empty,
            );
            crate::telemetry::join_trace(&span, event.trace_parent.as_deref());
            tasks.spawn(worker.deliver_one(event, permit).instrument(span));
        }
        Round::Started {
            started,
            more: started as u32 == want,
        }
    }

    /// How long until the next retry falls due, at least 5 ms; the poll interval when unknown.
    async fn until_next_due(&self) -> Duration {
        match self.store.next_due_at(self.target.mode).await {
            Ok(Some(next)) => {
                Duration::from_millis((next - self.target.clock.now_ms()).max(0) as u64).max(Duration::from_millis(5))
            }
            _ => self.poll_interval,
        }
    }

    /// Notes a claimed event as started: for the breaker (a half-open breaker lets one trial
    /// run), the pacer, and for a shutdown that must name and release what it cuts short.
    fn begin(&self, event: &ClaimedEvent) {
        self.target.breaker.started();
        self.target.pacer.started();
        self.in_flight
            .lock()
            .expect("not poisoned")
            .insert(event.seq, event.id.clone());
    }

    async fn deliver_one(self, event: ClaimedEvent, slot: OwnedSemaphorePermit) {
        let target = &self.target;
        let attempt = target.client.deliver(event.body.clone()).await;
        let finished_at = target.clock.now_ms();
        observe(target, self.store.as_ref(), &attempt, finished_at).await;
        // Salesforce has answered: the org's slot takes the next event while this outcome is
        // recorded (waiting for a commit's disk flush would otherwise hold the org's slots idle).
        // The event keeps its lease, and its order's next event stays behind it until the
        // record commits.
        let recording = self
            .recording
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        drop(slot);
        if self.wants_slots.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
        let transition = target.policy.transition(&event, &attempt.outcome, finished_at);
        let outcome = match (&attempt.outcome, &transition) {
            (_, Transition::Delivered) => "delivered",
            (_, Transition::Dead) => "dead",
            (DeliveryOutcome::RetryLimited, _) => "retry_400",
            (DeliveryOutcome::AuthRejected { .. }, _) => "auth_rejected",
            (DeliveryOutcome::Congested, _) => "congested",
            (DeliveryOutcome::DailyLimitReached { .. }, _) => "daily_limit",
            _ => "retry",
        };
        target.metrics.delivery(outcome);
        target.metrics.delivery_duration.observe(attempt.duration.as_secs_f64());
        // The line carries the attempt's status and outcome itself; the span, for the trace.
        let counted = !matches!(transition, Transition::RetryAt { counted: false, .. });
        let span = tracing::Span::current();
        if let Some(status) = attempt.status {
            crate::telemetry::record_for_trace(&span, "http.response.status_code", status);
        }
        crate::telemetry::record_for_trace(&span, "outcome", outcome);
        crate::telemetry::record_for_trace(&span, "counted", counted);
        // One line, cut: the full text is the attempt's record.
        let error = crate::support::text::one_line(attempt.error.as_deref().unwrap_or_default(), 300);
        match &transition {
            Transition::Delivered => tracing::info!(status = attempt.status, outcome, "delivered to Salesforce"),
            Transition::Dead => tracing::error!(
                status = attempt.status,
                outcome,
                %error,
                "event is dead: no more attempts"
            ),
            Transition::RetryAt { at_ms, .. } => tracing::warn!(
                status = attempt.status,
                outcome,
                counted,
                %error,
                retry_in_secs = (at_ms - finished_at) / 1000,
                "delivery failed; will retry"
            ),
        }
        let record = AttemptRecord {
            at_ms: finished_at,
            status_code: attempt.status,
            duration_ms: attempt.duration.as_millis() as u64,
            outcome,
            error: attempt.error,
            excerpt: attempt.excerpt,
        };
        // The delivery happened; if recording it fails the lease runs out and the event is
        // delivered again (at least once, never lost).
        let finished = match &transition {
            Transition::Delivered => "delivered",
            Transition::Dead => "dead",
            Transition::RetryAt { .. } => "retry",
        };
        let store = &self.store;
        let recorded = retry(RECORD_RETRIES, "recording the attempt", |_| {
            let (record, transition) = (record.clone(), transition.clone());
            async move {
                store.finish_attempt(event.seq, record, transition).await.map_err(|e| {
                    if e.is_transient() {
                        Failure::transient(e)
                    } else {
                        Failure::Permanent(e)
                    }
                })
            }
        })
        .instrument(crate::telemetry::trace_only(|| {
            tracing::info_span!("record_outcome", outcome = finished)
        }))
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, outcome, "could not record the attempt; it will be delivered again");
        }
        self.in_flight.lock().expect("not poisoned").remove(&event.seq);
        drop(recording);
        // No wake here: the loop waits on the task's end too (`tasks.join_next()`), and a second
        // wake for the same delivery would be a second claim that finds nothing.
    }
}

/// Before the first delivery and at the end of a pause for the org's API limits: asks the org's
/// usage, and starts, resumes or (still) waits.
async fn probe_usage(target: &Target) {
    let usage = target.client.api_usage().await;
    let cause = target.pacer.paused().map_or("", |c| c.as_str());
    let (used, max) = (usage.map(|u| u.used), usage.map(|u| u.max));
    match target.pacer.probed(usage) {
        Looked::Room => tracing::debug!(used, max, "the org's API usage leaves room"),
        Looked::Paused(PauseCause::DailyLimit) => tracing::error!(
            used,
            max,
            "the org's daily API allocation is spent: no delivery until it frees (the relay asks again after each pause)"
        ),
        Looked::Paused(PauseCause::ApiReserve) => tracing::warn!(
            used,
            max,
            "the org's API usage is already in the reserve kept for its other integrations \
             (salesforce.api_reserve_percent): no delivery until it falls"
        ),
        Looked::Resumed => tracing::info!(
            cause,
            used,
            max,
            "the org's API usage leaves room again: deliveries resume"
        ),
        Looked::StillPaused => {
            tracing::warn!(
                cause,
                used,
                max,
                "the org's API usage is still too high: deliveries stay paused"
            )
        }
    }
}

/// Notes one attempt's outcome where the org's state lives: the breaker, the sign-in memory,
/// the pacer, the API usage metrics and the status page's health.
async fn observe(target: &Target, store: &dyn Store, attempt: &DeliveryAttempt, finished_at: i64) {
    match target.breaker.record(&attempt.outcome, finished_at) {
        BreakerChange::Unchanged => {}
        BreakerChange::Opened => {
            tracing::warn!("Salesforce fails for every event: pausing deliveries (circuit breaker open)")
        }
        BreakerChange::Recovered { failing_since_ms } => recovered(target, store, failing_since_ms, finished_at).await,
    }
    let metrics = &target.metrics;
    metrics.breaker_open.set(target.breaker.is_open() as i64);
    target.sign_in.after_attempt(&attempt.outcome).await;
    let signal = Signal::of(&attempt.outcome, attempt.status);
    match target.pacer.finished(signal, attempt.duration, attempt.api_usage) {
        Some(PauseCause::DailyLimit) => tracing::error!(
            mode = target.mode.as_str(),
            "Salesforce says the org's daily API allocation is spent (TotalRequests): every delivery to it is paused; \
             the relay asks the org's usage again after each pause and resumes by itself"
        ),
        Some(PauseCause::ApiReserve) => tracing::warn!(
            mode = target.mode.as_str(),
            used = attempt.api_usage.map(|u| u.used),
            max = attempt.api_usage.map(|u| u.max),
            "the org's API usage reached the reserve kept for its other integrations (salesforce.api_reserve_percent): \
             deliveries are paused until it falls"
        ),
        None => {}
    }
    if let Some(usage) = attempt.api_usage {
        metrics.api_usage_used.set(usage.used as i64);
        metrics.api_usage_max.set(usage.max as i64);
        if usage.max > 0 && usage.used * 10 >= usage.max * 9 {
            tracing::warn!(
                used = usage.used,
                max = usage.max,
                "the org has used 90% of its daily API requests"
            );
        }
    }
    target.health.observe(
        &attempt.outcome,
        attempt.error.as_deref(),
        attempt.api_usage,
        finished_at,
    );
}

/// The org answers again after an outage: what failed during it was scheduled for the
/// schedule's later, longer delays (minutes, then half hours), which the org's return made
/// pointless; it is due now, in its orders' order, at the pace the pacer allows.
async fn recovered(target: &Target, store: &dyn Store, failing_since_ms: i64, now_ms: i64) {
    let outage_secs = (now_ms - failing_since_ms).max(0) / 1000;
    match store.retry_failed_since(target.mode, failing_since_ms, now_ms).await {
        Ok(due) => tracing::info!(
            mode = target.mode.as_str(),
            due,
            outage_secs,
            "Salesforce answers again: deliveries resume (circuit breaker closed), and the events that failed during the outage are due now"
        ),
        Err(e) => tracing::warn!(
            mode = target.mode.as_str(),
            error = %e,
            "Salesforce answers again, but the events that failed during the outage could not be made due now: they wait for their next scheduled attempt"
        ),
    }
}
