//! The delivery worker: claims due events from the store and delivers each to Salesforce.
//!
//! There is one worker per Salesforce target, and it claims only its own DR mode's events: each
//! target has its own token, circuit breaker and in-flight limit, so a sandbox that is down
//! neither takes production's slots nor opens production's breaker.
//!
//! Ordering comes from the store (it hands out only the first pending event of each order), so
//! the worker is free to run as many deliveries in parallel as its [`Pacer`] allows (at most
//! `max_in_flight`) — different orders
//! proceed side by side, one order's events one after the other. Claims carry a lease longer than
//! the longest delivery, so if this process dies its events become claimable again.
//!
//! The worker sleeps until there is something to do: an ingest wakes it, a finished delivery
//! wakes it (a successor may now be due), and otherwise it looks again after `poll_interval` or
//! when the next retry falls due, whichever is sooner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::health::TargetHealth;
use super::pacing::{Looked, Pacer, PauseCause, Permit, Signal};
use super::policy::{CircuitBreaker, RetryPolicy};
use super::sign_in::SignInMemory;
use crate::domain::{EventId, Mode};
use crate::metrics::{Metrics, TargetMetrics};
use crate::salesforce::{ApexClient, DeliveryOutcome};
use crate::store::{AttemptRecord, ClaimedEvent, Store, StoreError, Transition};
use crate::support::clock::now_ms;
use crate::support::http::{Backoff, Failure, retry};

pub struct Worker {
    /// The DR mode of the events this worker's target takes.
    pub mode: Mode,
    pub store: Arc<dyn Store>,
    pub client: ApexClient,
    pub policy: RetryPolicy,
    pub breaker: Arc<CircuitBreaker>,
    /// How many deliveries at once the org takes now, and the pauses for its API limits.
    pub pacer: Arc<Pacer>,
    pub max_in_flight: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Remembers a refused sign-in across restarts; `None` in tests that do not need it.
    pub sign_in: Option<Arc<SignInMemory>>,
    /// What the status page shows of this target.
    pub health: Arc<TargetHealth>,
}

struct Shared {
    mode: Mode,
    /// This target's series of `metrics`.
    metrics: TargetMetrics,
    store: Arc<dyn Store>,
    client: ApexClient,
    policy: RetryPolicy,
    breaker: Arc<CircuitBreaker>,
    pacer: Arc<Pacer>,
    wake: Arc<Notify>,
    sign_in: Option<Arc<SignInMemory>>,
    health: Arc<TargetHealth>,
    in_flight: Mutex<HashMap<i64, EventId>>,
}

/// Recording an attempt is retried this often when the store is busy or unavailable.
const RECORD_RETRIES: Backoff = Backoff {
    retries: 2,
    base: Duration::from_millis(200),
};

impl Worker {
    fn shared(&self) -> Arc<Shared> {
        Arc::new(Shared {
            mode: self.mode,
            metrics: self.metrics.for_target(self.mode),
            store: self.store.clone(),
            client: self.client.clone(),
            policy: self.policy.clone(),
            breaker: self.breaker.clone(),
            pacer: self.pacer.clone(),
            wake: self.wake.clone(),
            sign_in: self.sign_in.clone(),
            health: self.health.clone(),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// One round, for tests and tools that drive deliveries themselves: claims the due events
    /// (at most `max_in_flight`, fewer while the breaker holds back), delivers them side by side
    /// and records each attempt. Answers how many were attempted.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let shared = self.shared();
        let Ok(allowed) = shared.breaker.permits() else {
            return Ok(0);
        };
        let Permit::Start(paced) = shared.pacer.permits() else {
            return Ok(0);
        };
        let want = self.max_in_flight.min(allowed).min(paced) as u32;
        let events = shared.store.claim_due(self.mode, now_ms(), want, self.lease).await?;
        let attempted = events.len();
        let mut tasks = JoinSet::new();
        for event in events {
            begin(&shared, &event);
            let shared = shared.clone();
            tasks.spawn(async move { deliver_one(&shared, event).await });
        }
        while tasks.join_next().await.is_some() {}
        Ok(attempted)
    }

    /// Runs until `stop` is cancelled, then lets in-flight deliveries finish for at most
    /// `shutdown_timeout` and releases the leases of those that did not.
    pub async fn run(self, stop: CancellationToken, shutdown_timeout: Duration) {
        let shared = self.shared();
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let mut tasks = JoinSet::new();
        let mut store_failures = 0u32;

        while !stop.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let wait = claim_and_start(&shared, &slots, &mut tasks, &mut store_failures, self.lease)
                .await
                .map_or(self.poll_interval, |wait| wait.min(self.poll_interval));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = shared.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(wait), if !(wait.is_zero() && slots.available_permits() == 0) => {}
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
            let unfinished: Vec<(i64, EventId)> = shared
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
            if let Err(e) = shared.store.release(seqs).await {
                tracing::error!(error = %e, "could not release leases; they expire on their own");
            }
        }
    }
}

/// Claims as many due events as there are free slots (and the breaker allows) and starts their
/// deliveries; answers how long to wait before looking again, `None` for "the poll interval".
async fn claim_and_start(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    store_failures: &mut u32,
    lease: Duration,
) -> Option<Duration> {
    let allowed = match shared.breaker.permits() {
        Err(pause) => return Some(pause),
        Ok(allowed) => allowed,
    };
    let paced = match shared.pacer.permits() {
        Permit::Start(paced) => paced,
        Permit::Wait(pause) => return Some(pause),
        Permit::Probe => {
            probe_usage(shared).await;
            return Some(Duration::ZERO);
        }
    };
    let free = slots.available_permits().min(paced);
    if free == 0 {
        // A delivery that finishes wakes the loop.
        return None;
    }
    let want = free.min(allowed) as u32;
    let events = match shared.store.claim_due(shared.mode, now_ms(), want, lease).await {
        Ok(events) => events,
        Err(StoreError::Busy(reason)) => {
            tracing::debug!(%reason, "the store is busy; claiming again on the next poll");
            return None;
        }
        Err(e) => {
            *store_failures += 1;
            if *store_failures == 1 || (*store_failures).is_multiple_of(60) {
                tracing::error!(error = %e, "cannot claim events from the store");
            }
            return None;
        }
    };
    *store_failures = 0;
    let claimed_all = events.len() as u32 == want;
    for event in events {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        begin(shared, &event);
        let shared = shared.clone();
        let span = tracing::info_span!(
            "deliver",
            mode = shared.mode.as_str(),
            event_id = %event.id,
            event_type = %event.event_type,
            attempt = event.attempts + 1
        );
        tasks.spawn(
            async move {
                deliver_one(&shared, event).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    if claimed_all {
        // There may be more due: look again as soon as a slot frees.
        return Some(Duration::ZERO);
    }
    match shared.store.next_due_at(shared.mode).await {
        Ok(Some(next)) => Some(Duration::from_millis((next - now_ms()).max(0) as u64).max(Duration::from_millis(5))),
        _ => None,
    }
}

/// Before the first delivery and at the end of a pause for the org's API limits: asks the org's
/// usage, and starts, resumes or (still) waits.
async fn probe_usage(shared: &Shared) {
    let usage = shared.client.api_usage().await;
    let cause = shared.pacer.paused().map_or("", |c| c.as_str());
    let (used, max) = (usage.map(|u| u.used), usage.map(|u| u.max));
    match shared.pacer.probed(usage) {
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

/// Notes a claimed event as started: for the breaker (a half-open breaker lets one trial run),
/// the pacer, and for a shutdown that must name and release what it cuts short.
fn begin(shared: &Shared, event: &ClaimedEvent) {
    shared.breaker.started();
    shared.pacer.started();
    shared
        .in_flight
        .lock()
        .expect("not poisoned")
        .insert(event.seq, event.id.clone());
}

async fn deliver_one(shared: &Shared, event: ClaimedEvent) {
    let attempt = shared.client.deliver(event.body.clone()).await;
    let finished_at = now_ms();
    if shared.breaker.record(&attempt.outcome) {
        tracing::warn!("Salesforce fails for every event: pausing deliveries (circuit breaker open)");
    }
    let metrics = &shared.metrics;
    metrics.breaker_open.set(shared.breaker.is_open() as i64);
    if let Some(sign_in) = &shared.sign_in {
        sign_in.after_attempt(&attempt.outcome).await;
    }
    let signal = Signal::of(&attempt.outcome, attempt.status);
    match shared.pacer.finished(signal, attempt.duration, attempt.api_usage) {
        Some(PauseCause::DailyLimit) => tracing::error!(
            mode = shared.mode.as_str(),
            "Salesforce says the org's daily API allocation is spent (TotalRequests): every delivery to it is paused; \
             the relay asks the org's usage again after each pause and resumes by itself"
        ),
        Some(PauseCause::ApiReserve) => tracing::warn!(
            mode = shared.mode.as_str(),
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
    shared.health.observe(
        &attempt.outcome,
        attempt.error.as_deref(),
        attempt.api_usage,
        finished_at,
    );
    let transition = shared.policy.transition(&event, &attempt.outcome, finished_at);
    let outcome = match (&attempt.outcome, &transition) {
        (_, Transition::Delivered) => "delivered",
        (_, Transition::Dead) => "dead",
        (DeliveryOutcome::RetryLimited, _) => "retry_400",
        (DeliveryOutcome::AuthRejected { .. }, _) => "auth_rejected",
        (DeliveryOutcome::Congested, _) => "congested",
        (DeliveryOutcome::DailyLimitReached { .. }, _) => "daily_limit",
        _ => "retry",
    };
    metrics.delivery(outcome);
    metrics.delivery_duration.observe(attempt.duration.as_secs_f64());
    let error = attempt.error.clone().unwrap_or_default();
    match &transition {
        Transition::Delivered => tracing::info!(status = attempt.status, "delivered to Salesforce"),
        Transition::Dead => tracing::error!(status = attempt.status, %error, "event is dead: no more attempts"),
        Transition::RetryAt { at_ms, .. } => tracing::warn!(
            status = attempt.status,
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
    // The delivery happened; if recording it fails the lease runs out and the event is delivered
    // again (at least once, never lost).
    let recorded = retry(RECORD_RETRIES, "recording the attempt", |_| {
        let (record, transition) = (record.clone(), transition.clone());
        async move {
            shared
                .store
                .finish_attempt(event.seq, record, transition)
                .await
                .map_err(|e| {
                    if e.is_transient() {
                        Failure::transient(e)
                    } else {
                        Failure::Permanent(e)
                    }
                })
        }
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record the attempt; it will be delivered again");
    }
    shared.in_flight.lock().expect("not poisoned").remove(&event.seq);
    shared.wake.notify_one();
}
