//! The relay's own reconciliation with DR's Events API: what DR created while the relay was down is
//! stored and delivered after it starts, once, in order; relays sharing a store sweep one at a time.

use std::collections::HashSet;
use std::time::Duration;

use dr_sf_bridge::reconcile::Sweep;
use wiremock::ResponseTemplate;

use crate::backfill::Dr;
use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// A stepped relay that reconciles with `dr` (its test key), with no settle delay.
fn reconciling(dr: &Dr) -> Vec<(&'static str, String)> {
    vec![
        ("digital_river.api_base_url", dr.api.uri()),
        ("digital_river.api_key", API_KEY.to_owned()),
        ("digital_river.retry_base_delay_ms", "10".to_owned()),
        ("reconcile.settle_secs", "0".to_owned()),
        ("reconcile.overlap_secs", "60".to_owned()),
        ("register.target", "relay".to_owned()),
    ]
}

fn borrowed<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_relay_that_was_down_while_dr_created_1000_events_delivers_each_once_in_order_after_it_starts() {
    let dr = Dr::start().await;
    let settings = reconciling(&dr);
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let relay = spawn_stepped_app_with(sf, &borrowed(&settings)).await;
    assert_eq!(
        relay.sweep().await,
        Sweep::Started,
        "the first sweep watches from now on"
    );
    let t0 = relay.clock.now_ms();
    // DR delivered these before the relay went down.
    for n in 0..100 {
        let created = dr.create("order.accepted", &format!("evt-w-{n}"), &format!("o-w-{n}"), t0 + n);
        relay.accept(created.json.as_bytes()).await;
    }
    let (sf, dir) = relay.stop().await;

    // While it is down, DR creates 1,000 events of 50 orders, and gives up delivering them.
    for n in 0..1000i64 {
        let order = n % 50;
        dr.create(
            "order.complete",
            &format!("evt-{order}-{}", n / 50),
            &format!("o-{order}"),
            t0 + 200 + n * 3_000,
        );
    }
    let relay = spawn_stepped_app_in(sf, dir, &borrowed(&settings)).await;
    relay.advance(Duration::from_secs(3 * 3600));
    let Sweep::Swept { count, .. } = relay.sweep().await else {
        panic!("the restarted relay sweeps from its cursor");
    };
    assert_eq!((count.stored, count.already_stored), (1000, 100), "{count:?}");

    relay.deliver_due().await;
    let delivered = relay.sf.delivered_ids().await;
    assert_eq!(delivered.len(), 1100, "every event");
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 1100, "each once");
    for order in 0..50 {
        let of_order: Vec<&String> = delivered
            .iter()
            .filter(|id| id.starts_with(&format!("evt-{order}-")))
            .collect();
        let expected: Vec<String> = (0..20).map(|k| format!("evt-{order}-{k}")).collect();
        assert_eq!(
            of_order,
            expected.iter().collect::<Vec<_>>(),
            "o-{order} in createdTime order"
        );
    }
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("drsf_reconcile_recovered_events_total{target=\"test\"} 1000"),
        "{metrics}"
    );
    assert!(relay.logs.text().contains("never reached the relay"));

    relay.advance(Duration::from_secs(600));
    let Sweep::Swept { count, .. } = relay.sweep().await else {
        panic!("the next sweep");
    };
    assert_eq!(count.stored, 0, "the overlap stores nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_on_one_postgres_store_sweep_one_at_a_time_and_store_nothing_twice() {
    let Some(schema) = crate::pg::fresh_schema("reconcile_two_relays").await else {
        return;
    };
    let dr = Dr::start().await;
    let mut settings = reconciling(&dr);
    settings.push(("storage.url", schema.url.clone()));
    settings.push(("reconcile.overlap_secs", "900".to_owned()));
    let a = spawn_stepped_app_with(SalesforceStandIn::start().await, &borrowed(&settings)).await;
    let b = spawn_stepped_app_with(SalesforceStandIn::start().await, &borrowed(&settings)).await;
    let both = || async { tokio::join!(a.sweep(), b.sweep()) };

    let first = both().await;
    assert!(
        matches!(
            first,
            (Sweep::Started, Sweep::NotMine) | (Sweep::NotMine, Sweep::Started)
        ),
        "one of them: {first:?}"
    );
    let mut created = 0i64;
    let mut stored = 0;
    for round in 0..5 {
        let now = a.clock.now_ms().max(b.clock.now_ms());
        for n in 0..60 {
            dr.create(
                "order.accepted",
                &format!("evt-{round}-{n}"),
                &format!("o-{n}"),
                now + n * 1_000,
            );
            created += 1;
        }
        a.advance(Duration::from_secs(600));
        b.advance(Duration::from_secs(600));
        let (x, y) = both().await;
        let swept: Vec<&Sweep> = [&x, &y]
            .into_iter()
            .filter(|s| matches!(s, Sweep::Swept { .. }))
            .collect();
        assert_eq!(swept.len(), 1, "one sweep at a time: {x:?} {y:?}");
        assert!(matches!(x, Sweep::NotMine) || matches!(y, Sweep::NotMine));
        if let Sweep::Swept { count, .. } = swept[0] {
            stored += count.stored;
        }
    }
    assert_eq!(stored as i64, created, "every event, over overlapping windows");
    assert_eq!(
        a.store.stats().await.unwrap().total() as i64,
        created,
        "none stored twice"
    );

    // The holder stops sweeping: the other takes over once its lease runs out, and the overlap
    // stores nothing again.
    b.advance(Duration::from_secs(3600));
    let Sweep::Swept { count, .. } = b.sweep().await else {
        panic!("b takes over after the lease runs out");
    };
    assert_eq!(count.stored, 0);
}

#[tokio::test]
async fn check_reports_how_far_reconciliation_has_come() {
    let dr = Dr::start().await;
    let settings = reconciling(&dr);
    let relay = spawn_stepped_app_with(SalesforceStandIn::start().await, &borrowed(&settings)).await;
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());
    let check = || async {
        let out = cli(&["check", "--output", "json"])
            .envs(&sandbox_password_env(&dr.api))
            .env("DRSF__STORAGE__URL", &storage)
            .env("DRSF__REGISTER__TARGET", "relay")
            .env("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.test")
            .env("DRSF__RELAY__INBOUND_CLIENT_ID", INBOUND_CLIENT_ID)
            .env("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET)
            .run()
            .await;
        let report = out.json();
        report["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("{}\n{}", out.stdout, out.stderr))
            .iter()
            .find(|c| c["name"] == "reconciliation")
            .cloned()
            .unwrap_or_else(|| panic!("no reconciliation line: {report}"))
    };
    let before = check().await;
    assert_eq!(before["status"], "warn", "{before}");
    assert!(before["detail"].as_str().unwrap().contains("not swept"));
    assert_eq!(relay.sweep().await, Sweep::Started);
    let after = check().await;
    assert_eq!(after["status"], "pass", "{after}");
    assert!(
        after["detail"].as_str().unwrap().contains("reconciled up to 0 min ago"),
        "{after}"
    );
}
