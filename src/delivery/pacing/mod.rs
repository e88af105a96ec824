//! How fast one Salesforce org is sent events: adaptive concurrency, limit-error pauses and the
//! daily API budget.
//!
//! An org takes events only as fast as its Apex runs and its limits allow, and those limits are
//! the org's, not ours: about ten synchronous Apex requests may run longer than 5 s at once
//! (`ConcurrentPerOrgLongTxn`), and the daily API allocation is shared with every other
//! integration (`TotalRequests`). A fixed number of deliveries at once is either too few for a
//! fast org or too many for a slow one, so the [`Pacer`] finds the number:
//!
//! - **Slow start, then additive increase.** The limit starts small and grows by one per success
//!   (doubling each round trip) until the first sign of congestion, then by one per round trip.
//! - **A concurrency refusal marks the org's capacity.** `ConcurrentPerOrgLongTxn` means "more at
//!   once than the org runs": the limit drops to one below the number in flight and stays there;
//!   only after many successes is one more tried. So limit errors stay rare, and the event that
//!   met one is tried again in seconds without counting as a failed attempt.
//! - **Overload shrinks it.** A 503, a timeout or a latency that doubles halves (or trims) the
//!   limit; a request that ran longer than 5 s is long-running, and the limit is then held under
//!   the org's ten long-running requests.
//! - **Two pauses.** `TotalRequests` (the day's allocation is spent) and usage reaching the
//!   reserve (`salesforce.api_reserve_percent`, from `Sforce-Limit-Info`) pause every delivery to
//!   the org; at the end of each pause the worker asks the org's usage (`/limits`) and resumes
//!   when it is under the reserve. Near the reserve the limit is scaled down first. Events wait in
//!   the store meanwhile, nothing counted as failed. Before its first delivery the worker asks the
//!   usage too, so that a relay starting while the org is in its reserve sends nothing.
//!
//! `salesforce.concurrency = "fixed"` keeps `max_in_flight` at all times (pauses still apply).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Mode;
use crate::metrics::{Metrics, TargetMetrics};
use crate::salesforce::{ApiUsage, DeliveryOutcome};
use crate::support::clock::Clock;

/// Where the limit starts (or `max_in_flight` when smaller).
const INITIAL_LIMIT: f64 = 4.0;
/// Successes at the learned capacity before one more at once is tried.
const PROBE_AFTER: u32 = 256;
/// Requests running longer than this count against the org's long-running limit.
pub const LONG_RUNNING: Duration = Duration::from_secs(5);
/// The most long-running requests at once: under the org's default of 10, leaving room for the
/// org's other integrations.
const LONG_RUNNING_LIMIT: f64 = 8.0;
/// A latency this many times the usual one means the org is slowing down.
const LATENCY_RISE: f64 = 2.0;

/// What an answer says about the org's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered in time (delivered, or an answer about this event alone).
    Answered,
    /// Refused for concurrency (`ConcurrentPerOrgLongTxn`, `ConcurrentRequests`).
    Congested,
    /// A 503, a timeout or a connection failure: overloaded or down.
    Overloaded,
    /// The day's allocation is spent (`TotalRequests`).
    DailyLimit,
    /// Nothing about load (a refused sign-in, ...).
    Neutral,
}

impl Signal {
    pub fn of(outcome: &DeliveryOutcome, status: Option<u16>) -> Self {
        match outcome {
            DeliveryOutcome::Congested => Self::Congested,
            DeliveryOutcome::DailyLimitReached { .. } => Self::DailyLimit,
            DeliveryOutcome::AuthRejected { .. } => Self::Neutral,
            DeliveryOutcome::Retry { .. } if matches!(status, None | Some(502..=504)) => Self::Overloaded,
            _ => Self::Answered,
        }
    }
}

/// Why deliveries to an org are paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// `TotalRequests Limit exceeded`.
    DailyLimit,
    /// Usage reached `salesforce.api_reserve_percent` of the allocation.
    ApiReserve,
}

impl PauseCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DailyLimit => "daily_limit",
            Self::ApiReserve => "api_reserve",
        }
    }
}

/// What the worker may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Start up to this many more deliveries.
    Start(usize),
    /// Paused: look again after this long.
    Wait(Duration),
    /// A pause ended: ask the org's usage before resuming.
    Probe,
}

#[derive(Debug)]
struct State {
    limit: f64,
    /// Leaving slow start at the first congestion.
    slow_start: bool,
    /// The org's capacity learned from a concurrency refusal.
    capacity: Option<f64>,
    successes_at_capacity: u32,
    in_flight: usize,
    /// Completions since the last decrease: at most one decrease per round trip.
    since_decrease: usize,
    /// The usual latency (a slowly rising minimum), in seconds.
    usual_latency: Option<f64>,
    paused: Option<(Instant, PauseCause)>,
    usage: Option<ApiUsage>,
    /// Whether the org's usage was asked before the first delivery (with a reserve to keep).
    looked: bool,
}

/// What asking the org's usage led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looked {
    /// Before the first delivery: there is room.
    Room,
    /// Before the first delivery: usage is already in the reserve; paused.
    Paused(PauseCause),
    /// At the end of a pause: deliveries resume.
    Resumed,
    /// At the end of a pause: still no room; the pause goes on.
    StillPaused,
}

/// The pacing of one org. Cheap to consult: a mutex around a few numbers.
pub struct Pacer {
    ceiling: usize,
    adaptive: bool,
    /// The share of the daily allocation left to the org's other integrations, in percent.
    reserve_percent: u32,
    /// How long a pause lasts before the usage is asked again.
    pause: Duration,
    state: Mutex<State>,
    metrics: TargetMetrics,
    clock: Clock,
}

/// Whether usage has reached the reserve.
fn in_reserve(usage: ApiUsage, reserve_percent: u32) -> bool {
    usage.max > 0 && usage.used * 100 >= usage.max * u64::from(100 - reserve_percent.min(100))
}

impl Pacer {
    /// `ceiling`: `salesforce.max_in_flight`; `pause`: `delivery.rate_limit_min_delay_secs`.
    pub fn new(
        ceiling: usize,
        adaptive: bool,
        reserve_percent: u32,
        pause: Duration,
        metrics: &Metrics,
        mode: Mode,
    ) -> Self {
        let ceiling = ceiling.max(1);
        let limit = if adaptive {
            INITIAL_LIMIT.min(ceiling as f64)
        } else {
            ceiling as f64
        };
        let pacer = Self {
            ceiling,
            adaptive,
            reserve_percent,
            pause,
            state: Mutex::new(State {
                limit,
                slow_start: true,
                capacity: None,
                successes_at_capacity: 0,
                in_flight: 0,
                since_decrease: 0,
                usual_latency: None,
                paused: None,
                usage: None,
                looked: reserve_percent == 0,
            }),
            metrics: metrics.for_target(mode),
            clock: Clock::system(),
        };
        pacer.metrics.concurrency_limit.set(limit as i64);
        pacer
    }

    /// The pacer with its pauses read from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The deliveries that may start now.
    pub fn permits(&self) -> Permit {
        let state = self.state.lock().expect("not poisoned");
        if let Some((until, _)) = state.paused {
            let now = self.clock.now();
            if now < until {
                return Permit::Wait(until - now);
            }
            return Permit::Probe;
        }
        if !state.looked {
            return Permit::Probe;
        }
        Permit::Start(self.allowed(&state).saturating_sub(state.in_flight))
    }

    /// The limit now, scaled down as usage nears the reserve.
    fn allowed(&self, state: &State) -> usize {
        let limit = state.limit.floor().max(1.0);
        let scaled = match state.usage {
            Some(usage) if usage.max > 0 && self.reserve_percent > 0 => {
                // Within one reserve's width of the reserve: slow down in proportion.
                let max = usage.max as f64;
                let reserve = max * f64::from(self.reserve_percent.min(100)) / 100.0;
                let headroom = ((max - reserve - usage.used as f64) / reserve).clamp(0.0, 1.0);
                (limit * headroom).ceil().max(1.0)
            }
            _ => limit,
        };
        scaled as usize
    }

    /// The current limit (for tests and the status page).
    pub fn limit(&self) -> usize {
        self.allowed(&self.state.lock().expect("not poisoned"))
    }

    /// Whether deliveries are paused, and why.
    pub fn paused(&self) -> Option<PauseCause> {
        self.state.lock().expect("not poisoned").paused.map(|(_, cause)| cause)
    }

    /// Whether other API requests (the sweep of failure records) may be made now: not while
    /// deliveries are paused, nor while the usage last seen is in the reserve.
    pub fn api_room(&self) -> Result<(), PauseCause> {
        let state = self.state.lock().expect("not poisoned");
        if let Some((_, cause)) = state.paused {
            return Err(cause);
        }
        match state.usage {
            Some(usage) if usage.max > 0 && usage.used >= usage.max => Err(PauseCause::DailyLimit),
            Some(usage) if self.reserve_percent > 0 && in_reserve(usage, self.reserve_percent) => {
                Err(PauseCause::ApiReserve)
            }
            _ => Ok(()),
        }
    }

    /// Notes the usage an answer other than a delivery's reported.
    pub fn noted_usage(&self, usage: Option<ApiUsage>) {
        if let Some(usage) = usage {
            self.state.lock().expect("not poisoned").usage = Some(usage);
            self.metrics.api_usage_used.set(usage.used as i64);
            self.metrics.api_usage_max.set(usage.max as i64);
        }
    }

    pub fn started(&self) {
        let mut state = self.state.lock().expect("not poisoned");
        state.in_flight += 1;
        self.metrics.in_flight.set(state.in_flight as i64);
    }

    /// After each attempt: adapts the limit, and answers the pause this answer began, if any.
    pub fn finished(&self, signal: Signal, latency: Duration, usage: Option<ApiUsage>) -> Option<PauseCause> {
        let mut state = self.state.lock().expect("not poisoned");
        let in_flight_at_answer = state.in_flight;
        state.in_flight = state.in_flight.saturating_sub(1);
        state.since_decrease += 1;
        self.metrics.in_flight.set(state.in_flight as i64);
        if latency >= LONG_RUNNING {
            self.metrics.long_running.inc();
        }
        if self.adaptive {
            self.adapt(&mut state, signal, latency, in_flight_at_answer);
        }
        self.metrics.concurrency_limit.set(state.limit.floor() as i64);
        if let Some(usage) = usage {
            state.usage = Some(usage);
        }
        let cause = match (signal, state.usage) {
            (Signal::DailyLimit, _) => Some(PauseCause::DailyLimit),
            (_, Some(usage)) if self.reserve_percent > 0 && in_reserve(usage, self.reserve_percent) => {
                Some(PauseCause::ApiReserve)
            }
            _ => None,
        };
        match cause {
            Some(cause) if state.paused.is_none() => {
                self.pause(&mut state, cause);
                Some(cause)
            }
            _ => None,
        }
    }

    fn adapt(&self, state: &mut State, signal: Signal, latency: Duration, in_flight_at_answer: usize) {
        let seconds = latency.as_secs_f64();
        let round_trip_passed = state.since_decrease >= state.limit as usize;
        match signal {
            Signal::Congested => {
                let capacity = (in_flight_at_answer as f64 - 1.0).max(1.0);
                state.capacity = Some(state.capacity.map_or(capacity, |c| c.min(capacity)));
                state.limit = state.limit.min(capacity);
                state.slow_start = false;
                state.successes_at_capacity = 0;
                state.since_decrease = 0;
            }
            Signal::Overloaded if round_trip_passed || state.slow_start => {
                state.limit = (state.limit / 2.0).max(1.0);
                state.slow_start = false;
                state.since_decrease = 0;
            }
            Signal::Answered if latency >= LONG_RUNNING => {
                state.limit = state.limit.min(LONG_RUNNING_LIMIT);
                state.slow_start = false;
            }
            Signal::Answered => {
                let usual =
                    state.usual_latency.map_or(
                        seconds,
                        |u| {
                            if seconds < u { seconds } else { u + (seconds - u) * 0.01 }
                        },
                    );
                state.usual_latency = Some(usual);
                if seconds > usual * LATENCY_RISE && seconds > usual + 0.05 && round_trip_passed {
                    state.limit = (state.limit * 0.9).max(1.0);
                    state.slow_start = false;
                    state.since_decrease = 0;
                    return;
                }
                self.grow(state);
            }
            Signal::Overloaded | Signal::DailyLimit | Signal::Neutral => {}
        }
    }

    fn grow(&self, state: &mut State) {
        let ceiling = self.ceiling as f64;
        match state.capacity {
            Some(capacity) if state.limit >= capacity => {
                state.successes_at_capacity += 1;
                if state.successes_at_capacity >= PROBE_AFTER {
                    // Perhaps the org has room now (another integration finished): try one more.
                    state.successes_at_capacity = 0;
                    state.capacity = Some(capacity + 1.0);
                    state.limit = (capacity + 1.0).min(ceiling);
                }
            }
            capacity => {
                let step = if state.slow_start { 1.0 } else { 1.0 / state.limit };
                let cap = capacity.unwrap_or(ceiling).min(ceiling);
                state.limit = (state.limit + step).min(cap);
            }
        }
    }

    /// Begins a pause, counted by its cause.
    fn pause(&self, state: &mut State, cause: PauseCause) {
        self.metrics.pause(cause.as_str());
        self.hold(state, cause);
    }

    /// Pauses (or goes on pausing) every delivery for `delivery.rate_limit_min_delay_secs`.
    fn hold(&self, state: &mut State, cause: PauseCause) {
        state.paused = Some((self.clock.now() + self.pause, cause));
        // After a pause, one delivery at a time until the org answers again.
        if self.adaptive {
            state.limit = 1.0;
            state.slow_start = true;
        }
        self.metrics.paused.set(1);
    }

    /// The org's usage, asked before the first delivery or at the end of a pause (`None`: it did
    /// not say). Before the first delivery, usage in the reserve pauses; at the end of a pause,
    /// usage under it resumes, else the same pause goes on.
    pub fn probed(&self, usage: Option<ApiUsage>) -> Looked {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(usage) = usage {
            state.usage = Some(usage);
        }
        let Some((_, cause)) = state.paused else {
            state.looked = true;
            let cause = match usage {
                Some(usage) if usage.max > 0 && usage.used >= usage.max => PauseCause::DailyLimit,
                Some(usage) if in_reserve(usage, self.reserve_percent) => PauseCause::ApiReserve,
                _ => return Looked::Room,
            };
            self.pause(&mut state, cause);
            return Looked::Paused(cause);
        };
        let still = match (cause, usage) {
            (_, Some(usage)) if usage.max > 0 && usage.used >= usage.max => true,
            (PauseCause::ApiReserve, Some(usage)) => in_reserve(usage, self.reserve_percent),
            _ => false,
        };
        if still {
            self.hold(&mut state, cause);
            return Looked::StillPaused;
        }
        state.paused = None;
        self.metrics.paused.set(0);
        Looked::Resumed
    }
}

#[cfg(test)]
mod tests;
