//! "Delivered" means done in Salesforce: the relay reads the DR package's own failure records
//! (`DR_Failed_Event__c`, SOQL over REST with its token) from the project's stand-in org, whose
//! Apex resource answers 200 for chosen orders but keeps their events as such records, as the
//! package does during a read-only window.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dr_sf_bridge::delivery::pacing::PauseCause;
use dr_sf_bridge::ops::org_standin::{Org, OrgStandIn};
use dr_sf_bridge::reconcile::confirm::{ConfirmCount, ConfirmError, ConfirmSweep};
use dr_sf_bridge::salesforce::failed_events::QueryError;
use dr_sf_bridge::store::EventStatus;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;
use crate::status_page::{ADMIN_TOKEN, Visitor};

const READ_ONLY: &str =
    "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE: Update failed. The org is in read-only mode.";

async fn relay_for(org: Arc<Org>, extra: &[(&str, &str)]) -> TestRelay {
    let sf = SalesforceStandIn::start().await;
    let address = OrgStandIn::detached(org).await.unwrap();
    let mut overrides = vec![
        ("salesforce.my_domain_url", address.as_str()),
        ("relay.admin_token", ADMIN_TOKEN),
    ];
    overrides.extend_from_slice(extra);
    spawn_stepped_app_with(sf, &overrides).await
}

fn org_reporting_usage(used: u64, max: u64) -> Arc<Org> {
    let org = Org::default();
    org.used.store(used, Ordering::SeqCst);
    org.max.store(max, Ordering::SeqCst);
    Arc::new(org)
}

/// Accepts one `order.accepted` event per order, ids `evt-<order>`, and delivers them all.
async fn deliver_orders(relay: &TestRelay, orders: &[&str]) {
    for order in orders {
        relay
            .accept(&event("order.accepted", &format!("evt-{order}"), order))
            .await;
    }
    relay.deliver_due().await;
    for order in orders {
        assert_eq!(
            relay.status_of(&format!("evt-{order}")).await,
            Some(EventStatus::Delivered)
        );
    }
}

fn swept(sweep: ConfirmSweep) -> ConfirmCount {
    match sweep {
        ConfirmSweep::Swept(count) => count,
        other => panic!("expected a sweep, got {other:?}"),
    }
}

#[tokio::test]
async fn events_the_package_kept_as_failures_end_failed_in_salesforce_and_the_others_stay_delivered() {
    let org = org_reporting_usage(0, 100_000);
    org.page_size.store(2, Ordering::SeqCst);
    for order in ["bad-1", "bad-2", "bad-3"] {
        org.fail_in_package(order, READ_ONLY);
    }
    let relay = relay_for(org.clone(), &[]).await;
    deliver_orders(&relay, &["bad-1", "good-1", "bad-2", "good-2", "bad-3"]).await;

    let count = swept(relay.confirm().await.unwrap());
    assert_eq!((count.records, count.failed, count.not_stored), (3, 3, 0));
    assert_eq!(
        count.requests, 2,
        "three records in pages of two: nextRecordsUrl followed"
    );
    assert_eq!(org.queries(), 2);
    for bad in ["evt-bad-1", "evt-bad-2", "evt-bad-3"] {
        let (event, attempts) = relay.stored(bad).await;
        assert_eq!(event.status, EventStatus::FailedInSalesforce, "{bad}");
        assert!(event.last_error.as_deref().unwrap().contains("read-only mode"), "{bad}");
        assert!(attempts.iter().any(|a| a.outcome == "failed_in_salesforce"), "{bad}");
    }
    for good in ["evt-good-1", "evt-good-2"] {
        assert_eq!(relay.status_of(good).await, Some(EventStatus::Delivered), "{good}");
    }
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_salesforce_failed_events{target=\"test\"} 3")
    );
    assert!(relay.logs.text().contains("Salesforce stored 3 events as failures"));

    // The admin had the package process one: it is recovered.
    org.mark_processed("evt-bad-1");
    let count = swept(relay.confirm().await.unwrap());
    assert_eq!(count.recovered, 1);
    assert_eq!(relay.status_of("evt-bad-1").await, Some(EventStatus::Recovered));

    // The cause of another is fixed and it is sent again from the page, which warns first.
    let visitor = Visitor::sign_in(&relay).await;
    let (_, confirmation) = visitor.get("/ui/events/evt-bad-2/replay").await;
    assert!(
        confirmation.contains("already holds a DR Failed Event record"),
        "{confirmation}"
    );
    org.fail_in_package.lock().unwrap().remove("bad-2");
    assert_eq!(visitor.replay("evt-bad-2").await.status(), 303);
    relay.deliver_due().await;
    assert_eq!(relay.status_of("evt-bad-2").await, Some(EventStatus::Delivered));
    // The next sweep reads the old record again (its overlap) and leaves the replay alone.
    swept(relay.confirm().await.unwrap());
    assert_eq!(relay.status_of("evt-bad-2").await, Some(EventStatus::Delivered));
    assert_eq!(
        relay.status_of("evt-bad-3").await,
        Some(EventStatus::FailedInSalesforce)
    );
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_salesforce_failed_events{target=\"test\"} 1")
    );
}

#[tokio::test]
async fn the_health_line_and_the_lists_name_events_failed_in_salesforce() {
    let org = org_reporting_usage(0, 100_000);
    org.fail_in_package("bad-1", READ_ONLY);
    let relay = relay_for(org.clone(), &[]).await;
    deliver_orders(&relay, &["bad-1", "good-1"]).await;
    // A record of an event DR posted straight to the org.
    org.add_failure_record(
        "evt-straight-to-the-org",
        "order.complete",
        "List has no rows for assignment",
    );
    let count = swept(relay.confirm().await.unwrap());
    assert_eq!((count.failed, count.not_stored), (1, 1));

    let visitor = Visitor::sign_in(&relay).await;
    let (_, overview) = visitor.get("/ui/").await;
    let health = overview.split("id=\"health\"").nth(1).unwrap();
    assert!(health.contains("Salesforce stored 1 event as failures"), "{health}");
    assert!(
        overview.contains("evt-straight-to-the-org"),
        "the unknown record is listed"
    );
    assert!(overview.contains("never received"));
    let (_, list) = visitor.get("/ui/events?status=failed_in_salesforce").await;
    assert!(list.contains("evt-bad-1") && !list.contains("evt-good-1"), "{list}");
    let (_, page) = visitor.get("/ui/events/evt-bad-1").await;
    assert!(page.contains("Failed in Salesforce") && page.contains("read-only mode"));

    let admin = relay
        .http
        .get(format!("{}/admin/events?status=failed_in_salesforce", relay.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(admin.contains("evt-bad-1") && !admin.contains("evt-good-1"), "{admin}");

    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());
    let listed = cli(&["events", "list", "--status", "failed_in_salesforce"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("evt-bad-1") && !listed.stdout.contains("evt-good-1"),
        "{}",
        listed.stdout
    );
    let shown = cli(&["events", "show", "evt-bad-1"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert!(
        shown.stdout.contains("status: failed_in_salesforce"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("in Salesforce: ") && shown.stdout.contains("DR_Failed_Event__c a0X"),
        "the record's line, apart from the attempts:\n{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("attempt 1:") && !shown.stdout.contains("attempt 2:"),
        "{}",
        shown.stdout
    );
}

#[tokio::test]
async fn without_read_access_the_sweep_names_the_permission_and_the_relay_keeps_delivering() {
    let org = org_reporting_usage(0, 100_000);
    org.failures_hidden.store(true, Ordering::SeqCst);
    let relay = relay_for(org.clone(), &[]).await;
    let error = relay.confirm().await.unwrap_err();
    assert!(
        matches!(error, ConfirmError::Salesforce(QueryError::NotReadable { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("permission set"), "{error}");
    deliver_orders(&relay, &["o-1", "o-2"]).await;
    let visitor = Visitor::sign_in(&relay).await;
    let (_, overview) = visitor.get("/ui/").await;
    let row = overview.split("id=\"failure-records\"").nth(1).unwrap();
    assert!(
        row.contains("permission set") && row.contains("deliveries go on"),
        "{row}"
    );
}

#[tokio::test]
async fn the_sweep_asks_nothing_while_the_org_is_in_its_api_reserve() {
    // 95 of 100 daily requests used, 10% kept for the org's other integrations.
    let org = org_reporting_usage(95, 100);
    let relay = relay_for(org.clone(), &[("salesforce.api_reserve_percent", "10")]).await;
    relay.accept(&event("order.accepted", "evt-1", "o-1")).await;
    relay.deliver_due().await; // asks the usage first: paused
    assert_eq!(
        relay.confirm().await.unwrap(),
        ConfirmSweep::Skipped(PauseCause::ApiReserve)
    );
    assert_eq!(org.queries(), 0);
}

#[tokio::test]
async fn the_sweep_stops_at_its_request_budget_and_at_the_reserve() {
    // 80 of 100 used; the reserve is reached at 90.
    let org = org_reporting_usage(80, 100);
    org.page_size.store(1, Ordering::SeqCst);
    for n in 0..6 {
        org.add_failure_record(&format!("evt-elsewhere-{n}"), "order.accepted", "reason");
    }
    let relay = relay_for(
        org.clone(),
        &[
            ("salesforce.api_reserve_percent", "10"),
            ("confirm.max_requests_per_sweep", "3"),
        ],
    )
    .await;
    let first = swept(relay.confirm().await.unwrap());
    assert_eq!((first.requests, first.cut_short), (3, true), "the budget: 3 of 6 pages");
    assert_eq!(org.queries(), 3);

    // Each query is an API request: 83 used now; at 88 the next sweep may go two pages further.
    org.used.store(88, Ordering::SeqCst);
    let second = swept(relay.confirm().await.unwrap());
    assert_eq!(
        org.used.load(Ordering::SeqCst),
        90,
        "stopped when the usage reached the reserve"
    );
    assert_eq!((second.requests, second.cut_short), (2, true));
    assert_eq!(
        relay.confirm().await.unwrap(),
        ConfirmSweep::Skipped(PauseCause::ApiReserve)
    );
    assert_eq!(org.queries(), 5, "nothing asked inside the reserve");
}
