use super::*;
use crate::delivery::health::Observed;
use crate::delivery::pacing::PauseCause;
use crate::domain::Mode;

const NOW: i64 = 1_795_402_800_000;

/// The health line of the store and targets alone (no webhook facts).
fn health_of(store: Result<&StoreStats, String>, targets: &[TargetSnapshot], now_ms: i64) -> Health {
    let webhooks = vec![None; targets.len()];
    Health::of(&conditions::current(&Inputs {
        store,
        targets,
        webhooks: &webhooks,
        disk: None,
        now_ms,
    }))
}

#[test]
fn a_nearly_full_disk_is_a_red_line_that_says_what_happens_when_it_fills() {
    let targets = [target(Mode::Test)];
    let webhooks = vec![None];
    let on_disk = |free_bytes| {
        conditions::current(&Inputs {
            store: Ok(&stats()),
            targets: &targets,
            webhooks: &webhooks,
            disk: Some(crate::store::disk::DiskSpace {
                free_bytes,
                total_bytes: 1000 << 20,
            }),
            now_ms: NOW,
        })
    };
    let nearly_full = Health::of(&on_disk(50 << 20));
    assert_eq!(nearly_full.level, Level::Bad);
    assert!(
        nearly_full.headline.contains("95% full (50.0 MiB free)") && nearly_full.headline.contains("refused"),
        "{}",
        nearly_full.headline
    );
    assert!(nearly_full.detail.contains("events purge"), "{}", nearly_full.detail);
    assert!(on_disk(200 << 20).is_empty(), "a disk 80% full is no condition");
}

fn target(mode: Mode) -> TargetSnapshot {
    TargetSnapshot {
        mode,
        webhook_url: "https://acme.my.salesforce.com/services/apexrest/digitalriverv3/webhooks/".into(),
        grant: "password",
        grants: 1,
        sign_in_refused: None,
        breaker_open: false,
        paused: None,
        concurrency: 8,
        max_in_flight: 32,
        observed: Observed::default(),
    }
}

fn stats() -> StoreStats {
    StoreStats {
        delivered: 10,
        ..Default::default()
    }
}

#[test]
fn all_good_when_nothing_fails_or_waits() {
    let health = health_of(Ok(&stats()), &[target(Mode::Live)], NOW);
    assert_eq!(health.level, Level::Good);
    assert!(health.headline.starts_with("All good"));
}

#[test]
fn an_unavailable_store_comes_first() {
    let mut refused = target(Mode::Live);
    refused.sign_in_refused = Some("invalid_grant".into());
    let health = health_of(Err("disk full".into()), &[refused], NOW);
    assert_eq!(health.level, Level::Bad);
    assert!(health.headline.starts_with("Store unavailable"), "{health:?}");
    assert!(health.detail.contains("disk full"));
}

#[test]
fn a_refused_sign_in_says_to_fix_the_password_before_the_failures_it_causes() {
    let mut refused = target(Mode::Live);
    refused.sign_in_refused = Some("Salesforce refused the password grant: invalid_grant".into());
    refused.observed.failing_since_ms = Some(NOW - 60_000);
    let health = health_of(Ok(&stats()), &[refused], NOW);
    assert_eq!(health.level, Level::Bad);
    assert!(health.headline.contains("Sign-in refused") && health.headline.contains("fix the password"));
    assert!(health.detail.contains("invalid_grant"));
}

#[test]
fn a_failing_org_says_since_when_and_which_org_when_there_are_two() {
    let mut failing = target(Mode::Test);
    failing.observed.failing_since_ms = Some(NOW - 12 * 60_000);
    failing.observed.last_failure = Some("Salesforce answered 503".into());
    let health = health_of(Ok(&stats()), &[target(Mode::Live), failing.clone()], NOW);
    assert_eq!(health.level, Level::Bad);
    assert_eq!(
        health.headline,
        "The sandbox failing since 2026-11-23 02:48:00 UTC (12 min ago)"
    );
    assert!(health.detail.contains("Salesforce answered 503"));
    let alone = health_of(Ok(&stats()), &[failing], NOW);
    assert!(alone.headline.starts_with("Salesforce failing since"), "{alone:?}");
}

#[test]
fn paused_deliveries_dead_events_and_old_pending_ones_are_warnings() {
    let mut paused = target(Mode::Live);
    paused.paused = Some(PauseCause::DailyLimit);
    let health = health_of(Ok(&stats()), &[paused], NOW);
    assert_eq!(health.level, Level::Warn);
    assert!(health.headline.contains("daily API allocation is spent"), "{health:?}");

    let dead = StoreStats { dead: 2, ..stats() };
    let health = health_of(Ok(&dead), &[target(Mode::Live)], NOW);
    assert_eq!(health.level, Level::Warn);
    assert!(
        health.headline.contains("2 events could not be delivered"),
        "{health:?}"
    );

    let waiting = StoreStats {
        oldest_pending_received_at_ms: Some(NOW - 20 * 60_000),
        ..stats()
    };
    let health = health_of(Ok(&waiting), &[target(Mode::Live)], NOW);
    assert_eq!(health.level, Level::Warn);
    assert!(health.headline.contains("has waited 20 min"), "{health:?}");
    let recent = StoreStats {
        oldest_pending_received_at_ms: Some(NOW - 60_000),
        ..stats()
    };
    assert_eq!(health_of(Ok(&recent), &[target(Mode::Live)], NOW).level, Level::Good);
}

#[test]
fn the_chart_scales_bars_to_the_busiest_hour() {
    let activity = [
        ActivityBucket {
            start_ms: 0,
            received: 10,
            delivered: 5,
        },
        ActivityBucket {
            start_ms: 1,
            received: 0,
            delivered: 0,
        },
    ];
    let svg = chart(&activity).into_string();
    assert!(
        svg.contains(r##"height="120" fill="#8fb3d1""##),
        "the busiest bar is full height: {svg}"
    );
    assert!(
        svg.contains(r##"height="60" fill="#1e8a4c""##),
        "half as many delivered: {svg}"
    );
    assert!(svg.contains("busiest hour: 10"));
    assert_eq!(svg.matches("<rect").count(), 4);
}

#[test]
fn the_traffic_counts_say_they_are_counted_from_what_is_stored() {
    let page = traffic(&[ActivityBucket {
        start_ms: 0,
        received: 3,
        delivered: 3,
    }])
    .into_string();
    assert!(page.contains(r#"<b id="received-day">3</b>"#), "{page}");
    assert!(
        page.contains("Counted from the events stored now: events deleted by <code>events purge</code>"),
        "a purge lowers these counts, and the page says so: {page}"
    );
}

#[test]
fn an_org_panel_names_the_org_and_the_limit_in_force_beside_the_ceiling() {
    let panel = target_panel(&target(Mode::Test), None, None, NOW).into_string();
    assert!(
        panel.contains("<dd>https://acme.my.salesforce.com (test mode)</dd>"),
        "the org, not its Apex resource: {panel}"
    );
    assert!(
        panel.contains("flowing, up to 8 at once now (at most 32, salesforce.max_in_flight)"),
        "{panel}"
    );
}

#[test]
fn a_disabled_or_incomplete_webhook_is_the_red_headline_even_beside_dead_events() {
    let dead = StoreStats { dead: 3, ..stats() };
    let targets = [target(Mode::Live)];
    for (state, says) in [
        ("disabled", "DR disabled the webhook"),
        ("missing", "DR has no webhook for this relay"),
        ("types_missing", "lacks event types"),
    ] {
        let webhooks = vec![Some(WebhookSeen {
            ok: false,
            detail: "as DR's Webhooks API lists it.".into(),
            checked_at_ms: NOW - 60_000,
            state: Some(state.into()),
        })];
        let current = conditions::current(&Inputs {
            store: Ok(&dead),
            targets: &targets,
            webhooks: &webhooks,
            disk: None,
            now_ms: NOW,
        });
        let health = Health::of(&current);
        assert_eq!(health.level, Level::Bad, "{state}: {health:?}");
        assert!(health.headline.contains(says), "{state}: {health:?}");
        assert!(
            current
                .iter()
                .any(|c| c.headline.contains("3 events could not be delivered")),
            "the dead events are still listed below it"
        );
    }
}
