//! The fault soak: about a minute of DR's traffic while Salesforce misbehaves in every way the
//! reference describes and the relay process is SIGKILLed and restarted twice. At the end every
//! acknowledged event has reached Salesforce, each order's events in the order they were
//! acknowledged; duplicates are counted and reported (delivery is at least once).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::relay_helpers::*;
use crate::relay_process::{RelayProcess, deliver_like_dr, free_port};
use crate::salesforce_standin::*;

/// How Salesforce behaves during one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mood {
    Healthy = 0,
    Unavailable = 1,
    TimingOut = 2,
    ExpiringSessions = 3,
    Slow = 4,
}

/// The phases in turn (indexed by `Mood as usize`); the cycle runs Healthy, ExpiringSessions,
/// Slow, Unavailable, TimingOut, so that the session expiry is not hidden behind a breaker the
/// outages opened.
const MOODS: [Mood; 5] = [
    Mood::Healthy,
    Mood::Unavailable,
    Mood::TimingOut,
    Mood::ExpiringSessions,
    Mood::Slow,
];
const CYCLE: [Mood; 5] = [
    Mood::Healthy,
    Mood::ExpiringSessions,
    Mood::Slow,
    Mood::Unavailable,
    Mood::TimingOut,
];

#[derive(Default)]
struct Org {
    mood: AtomicU8,
    /// Tokens numbered up to this one are expired (the ExpiringSessions phase moves it).
    expired_through: AtomicU64,
    tokens_issued: AtomicU64,
    /// Event ids in the order Salesforce received them with an answer of 200 (even late).
    received: Mutex<Vec<String>>,
    /// Faults injected, by mood.
    faults: [AtomicUsize; 5],
}

impl Org {
    fn mood(&self) -> Mood {
        MOODS[self.mood.load(Ordering::Relaxed) as usize]
    }
}

struct TokenEndpoint(Arc<Org>);

impl Respond for TokenEndpoint {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.0.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("soak-token-{n}"),
            "instance_url": "https://soak.my.salesforce.com",
            "token_type": "Bearer",
            "issued_at": "1700000000000"
        }))
    }
}

struct Apex(Arc<Org>);

impl Respond for Apex {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let org = &self.0;
        let token: u64 = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mood = org.mood();
        if mood == Mood::ExpiringSessions && token <= org.expired_through.load(Ordering::SeqCst) {
            org.faults[mood as usize].fetch_add(1, Ordering::Relaxed);
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid");
        }
        if mood == Mood::Unavailable {
            org.faults[mood as usize].fetch_add(1, Ordering::Relaxed);
            return ResponseTemplate::new(503).set_body_string("<html>Down for maintenance</html>");
        }
        let id = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from));
        if let Some(id) = id {
            org.received.lock().unwrap().push(id);
        }
        match mood {
            // Past the relay's 1 s request timeout: Salesforce got it, the relay does not know.
            Mood::TimingOut => {
                org.faults[mood as usize].fetch_add(1, Ordering::Relaxed);
                ResponseTemplate::new(200).set_delay(Duration::from_millis(1500))
            }
            Mood::Slow => {
                org.faults[mood as usize].fetch_add(1, Ordering::Relaxed);
                ResponseTemplate::new(200).set_delay(Duration::from_millis(150))
            }
            _ => ResponseTemplate::new(200),
        }
    }
}

/// The order an event belongs to and its place in it, from an id `soak-{order}-{index}`.
fn place(id: &str) -> (u32, u32) {
    let mut parts = id.rsplit('-');
    let index = parts.next().unwrap().parse().unwrap();
    let order = parts.next().unwrap().parse().unwrap();
    (order, index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_faults_and_two_sigkills_loses_nothing_and_keeps_order() {
    const ORDERS: u32 = 100;
    const PER_ORDER_PER_SEC: f64 = 5.0;
    const LOAD: Duration = Duration::from_secs(40);

    let org = Arc::new(Org::default());
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(TokenEndpoint(org.clone())).mount(&sf.server).await;
    apex(Apex(org.clone())).mount(&sf.server).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let overrides = [
        ("salesforce.request_timeout_secs", "1"),
        ("salesforce.max_in_flight", "8"),
        (
            "delivery.retry_schedule",
            "0s,50ms,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
        ),
        ("delivery.breaker_threshold", "50"),
        ("delivery.breaker_cooldown_secs", "1"),
        ("delivery.poll_interval_ms", "50"),
    ];
    let mut relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    let address = relay.address.clone();
    let started = Instant::now();

    // DR: one stream per order, each event sent (and retried) until acknowledged, then the next.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let posts = Arc::new(AtomicUsize::new(0));
    let mut streams = tokio::task::JoinSet::new();
    for order in 0..ORDERS {
        let (acknowledged, posts, address) = (acknowledged.clone(), posts.clone(), address.clone());
        streams.spawn(async move {
            let http = reqwest::Client::new();
            let every = Duration::from_secs_f64(1.0 / PER_ORDER_PER_SEC);
            let mut index = 0u32;
            let mut next = Instant::now() + every.mul_f64(f64::from(order) / f64::from(ORDERS));
            while started.elapsed() < LOAD {
                tokio::time::sleep_until(next.into()).await;
                next += every;
                let id = format!("soak-{order}-{index}");
                let body = event("order.accepted", &id, &format!("soak-order-{order}"));
                posts.fetch_add(deliver_like_dr(&http, &address, body).await, Ordering::Relaxed);
                acknowledged.lock().unwrap().push(id);
                index += 1;
            }
        });
    }

    // Salesforce changes its mood every 2 s; the relay is killed at 12 s and at 27 s.
    let mut kills = 0;
    let mut phase = 0usize;
    while started.elapsed() < LOAD {
        tokio::time::sleep(Duration::from_secs(2)).await;
        phase += 1;
        let mood = CYCLE[phase % CYCLE.len()];
        if mood == Mood::ExpiringSessions {
            org.expired_through
                .store(org.tokens_issued.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        org.mood.store(mood as u8, Ordering::Relaxed);
        let elapsed = started.elapsed();
        if (kills == 0 && elapsed > Duration::from_secs(12)) || (kills == 1 && elapsed > Duration::from_secs(27)) {
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &relay.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            let _ = relay.child.wait().await;
            kills += 1;
            relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
        }
    }
    while streams.join_next().await.is_some() {}
    org.mood.store(Mood::Healthy as u8, Ordering::Relaxed);

    let acknowledged = acknowledged.lock().unwrap().clone();
    // Room for the backlog a minute of faults leaves: seconds on an idle machine, over a minute with
    // both cores busy (the relay is a debug build there, sharing the cores with a CPU hog).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let received: std::collections::HashSet<String> = org.received.lock().unwrap().iter().cloned().collect();
        let missing = acknowledged.iter().filter(|id| !received.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged events never reached Salesforce\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let received = org.received.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut first_seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for id in &received {
        let count = counts.entry(id.as_str()).or_default();
        *count += 1;
        if *count == 1 {
            let (order, index) = place(id);
            first_seen.entry(order).or_default().push(index);
        }
    }
    for (order, indices) in &first_seen {
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "order {order} out of order: {indices:?}"
        );
    }
    let duplicated = counts.values().filter(|n| **n > 1).count();
    println!(
        "soak | {:.0} s | posts {} | acknowledged {} | delivered {} | lost 0 | duplicated {} | faults: 503 {}, timeouts {}, 401 expiries {}, slow {} | SIGKILLs {kills} | token grants {}",
        started.elapsed().as_secs_f64(),
        posts.load(Ordering::Relaxed),
        acknowledged.len(),
        counts.len(),
        duplicated,
        org.faults[Mood::Unavailable as usize].load(Ordering::Relaxed),
        org.faults[Mood::TimingOut as usize].load(Ordering::Relaxed),
        org.faults[Mood::ExpiringSessions as usize].load(Ordering::Relaxed),
        org.faults[Mood::Slow as usize].load(Ordering::Relaxed),
        org.tokens_issued.load(Ordering::Relaxed),
    );
    assert_eq!(kills, 2);
    for mood in [Mood::Unavailable, Mood::TimingOut, Mood::ExpiringSessions, Mood::Slow] {
        assert!(
            org.faults[mood as usize].load(Ordering::Relaxed) > 0,
            "{mood:?} was injected"
        );
    }
    // That the load ran, not how fast: a busy machine acknowledges fewer in the same minute.
    assert!(acknowledged.len() > 1_000, "the load ran: {}", acknowledged.len());
}
