//! The pacer's rules, one answer at a time.

use super::*;

fn pacer(ceiling: usize) -> Pacer {
    Pacer::new(ceiling, true, 10, Duration::from_secs(60), &Metrics::new(), Mode::Test)
}

fn start(pacer: &Pacer) -> usize {
    if pacer.permits() == Permit::Probe {
        assert_eq!(pacer.probed(None), Looked::Room, "the first look");
    }
    let Permit::Start(n) = pacer.permits() else {
        panic!("paused")
    };
    for _ in 0..n {
        pacer.started();
    }
    n
}

const FAST: Duration = Duration::from_millis(100);

#[test]
fn the_limit_doubles_per_round_trip_until_the_org_refuses_then_holds_under_its_capacity() {
    let pacer = pacer(32);
    assert_eq!(start(&pacer), 4, "starts small");
    for _ in 0..4 {
        pacer.finished(Signal::Answered, FAST, None);
    }
    assert_eq!(pacer.limit(), 8, "slow start: one more per success");
    assert_eq!(start(&pacer), 8);
    // Capacity 6: two of the eight are refused.
    pacer.finished(Signal::Congested, FAST, None);
    pacer.finished(Signal::Congested, FAST, None);
    assert_eq!(pacer.limit(), 6, "one below those in flight when refused");
    for _ in 0..6 {
        pacer.finished(Signal::Answered, FAST, None);
    }
    assert_eq!(pacer.limit(), 6, "held at the capacity");
    for _ in 0..PROBE_AFTER {
        pacer.started();
        pacer.finished(Signal::Answered, FAST, None);
    }
    assert_eq!(pacer.limit(), 7, "one more tried after many successes");
}

#[test]
fn overload_halves_and_long_requests_hold_the_limit_under_the_long_running_limit() {
    let pacer = pacer(32);
    start(&pacer);
    for _ in 0..28 {
        pacer.started();
        pacer.finished(Signal::Answered, FAST, None);
    }
    assert_eq!(pacer.limit(), 32);
    pacer.started();
    pacer.finished(Signal::Overloaded, FAST, None);
    assert_eq!(pacer.limit(), 16);
    pacer.started();
    pacer.finished(Signal::Answered, Duration::from_secs(6), None);
    assert_eq!(pacer.limit(), 8, "long-running requests stay under the org's 10");
}

#[test]
fn a_relay_starting_in_the_reserve_sends_nothing() {
    let pacer = pacer(8);
    assert_eq!(pacer.permits(), Permit::Probe);
    assert_eq!(
        pacer.probed(Some(ApiUsage { used: 950, max: 1000 })),
        Looked::Paused(PauseCause::ApiReserve)
    );
    assert!(matches!(pacer.permits(), Permit::Wait(_)));
    assert_eq!(pacer.paused(), Some(PauseCause::ApiReserve));
    let spent = self::pacer(8);
    assert_eq!(
        spent.probed(Some(ApiUsage { used: 1000, max: 1000 })),
        Looked::Paused(PauseCause::DailyLimit)
    );
}

#[test]
fn a_fixed_pacer_keeps_its_limit() {
    let pacer = Pacer::new(8, false, 10, Duration::from_secs(60), &Metrics::new(), Mode::Test);
    assert_eq!(start(&pacer), 8);
    pacer.finished(Signal::Congested, FAST, None);
    pacer.finished(Signal::Overloaded, FAST, None);
    assert_eq!(pacer.limit(), 8);
}

#[test]
fn the_daily_limit_pauses_until_the_usage_says_there_is_room() {
    let pacer = pacer(8);
    start(&pacer);
    let used_up = ApiUsage { used: 1000, max: 1000 };
    assert_eq!(
        pacer.finished(Signal::DailyLimit, FAST, Some(used_up)),
        Some(PauseCause::DailyLimit)
    );
    assert!(matches!(pacer.permits(), Permit::Wait(_)));
    assert_eq!(
        pacer.finished(Signal::DailyLimit, FAST, None),
        None,
        "one pause, not two"
    );
    pacer.state.lock().unwrap().paused = Some((Instant::now(), PauseCause::DailyLimit));
    assert_eq!(pacer.permits(), Permit::Probe);
    assert_eq!(
        pacer.probed(Some(used_up)),
        Looked::StillPaused,
        "still spent: paused again"
    );
    assert!(matches!(pacer.permits(), Permit::Wait(_)));
    pacer.state.lock().unwrap().paused = Some((Instant::now(), PauseCause::DailyLimit));
    assert_eq!(pacer.probed(Some(ApiUsage { used: 100, max: 1000 })), Looked::Resumed);
    pacer.finished(Signal::Neutral, FAST, None);
    pacer.finished(Signal::Neutral, FAST, None);
    assert_eq!(pacer.permits(), Permit::Start(1), "one at a time after a pause");
}

#[test]
fn usage_near_the_reserve_slows_then_pauses() {
    let pacer = Pacer::new(8, false, 10, Duration::from_secs(60), &Metrics::new(), Mode::Test);
    assert_eq!(
        pacer.permits(),
        Permit::Probe,
        "the usage is asked before the first delivery"
    );
    assert_eq!(pacer.probed(Some(ApiUsage { used: 10, max: 1000 })), Looked::Room);
    pacer.started();
    pacer.finished(Signal::Answered, FAST, Some(ApiUsage { used: 850, max: 1000 }));
    assert_eq!(pacer.limit(), 4, "halfway into the slow-down band: half the limit");
    pacer.started();
    assert_eq!(
        pacer.finished(Signal::Answered, FAST, Some(ApiUsage { used: 950, max: 1000 })),
        Some(PauseCause::ApiReserve)
    );
    pacer.state.lock().unwrap().paused = Some((Instant::now(), PauseCause::ApiReserve));
    assert_eq!(
        pacer.probed(Some(ApiUsage { used: 920, max: 1000 })),
        Looked::StillPaused,
        "still in the reserve"
    );
    pacer.state.lock().unwrap().paused = Some((Instant::now(), PauseCause::ApiReserve));
    assert_eq!(pacer.probed(Some(ApiUsage { used: 500, max: 1000 })), Looked::Resumed);
    assert_eq!(pacer.permits(), Permit::Start(8));
}
