//! `events list | show | replay` beside a running relay.

use dr_sf_bridge::store::EventStatus;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

#[tokio::test]
async fn a_dead_event_is_listed_shown_and_replayed_to_delivery() {
    let sf = SalesforceStandIn::start().await;
    let missing_package = apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[]).await;
    relay.accept(&event("order.accepted", "evt-dead", "o-dead")).await;
    let mut ignored: serde_json::Value =
        serde_json::from_slice(&event("order.accepted", "evt-ignored", "o-2")).unwrap();
    ignored["type"] = "refund.pending".into();
    assert_eq!(
        relay.post_event(&serde_json::to_vec(&ignored).unwrap()).await.status(),
        200
    );
    relay.wait_for_status("evt-dead", EventStatus::Dead).await;
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());

    let listed = cli(&["events", "list", "--status", "dead"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("evt-dead"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(
        row.contains("order.accepted") && row.contains("dead") && row.contains("digitalriverv3"),
        "{row}"
    );
    assert!(!listed.stdout.contains("evt-ignored"), "filtered by status");

    let shown = cli(&["events", "show", "evt-dead", "--output", "json", "--body"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let details = shown.json();
    assert_eq!(details["event"]["status"], "dead");
    assert_eq!(details["attempts"][0]["statusCode"], 404);
    assert_eq!(details["body"]["id"], "evt-dead");

    // The package is installed now: replay.
    drop(missing_package);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let replayed = cli(&["events", "replay", "evt-dead"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    relay.wait_for_status("evt-dead", EventStatus::Delivered).await;

    let again = cli(&["events", "replay", "evt-unknown"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no stored event has this id"), "{}", again.stderr);
}

#[tokio::test]
async fn an_unknown_status_is_an_error_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("relay.db").display());
    let out = cli(&["events", "list", "--status", "deadd"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(out.code, 2, "a usage error, not an empty list: {}", out.stdout);
    for status in ["pending", "delivered", "dead", "ignored"] {
        assert!(out.stderr.contains(status), "{status} not named: {}", out.stderr);
    }
    assert!(!out.stdout.contains("No events"), "{}", out.stdout);
}

#[tokio::test]
async fn a_mistyped_store_path_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("relya").join("relay.db");
    let out = cli(&["events", "list"])
        .env("DRSF__STORAGE__URL", format!("sqlite://{}", typo.display()))
        .run()
        .await;
    assert_eq!(out.code, 5, "a store failure has its own exit code: {}", out.stderr);
    assert!(out.stderr.contains("no store at"), "{}", out.stderr);
    assert!(!out.stdout.contains("No events"), "{}", out.stdout);
    assert!(!dir.path().join("relya").exists(), "no folder or database was created");
}

#[tokio::test]
async fn dead_events_replayed_in_bulk_are_delivered_by_the_running_relay() {
    let sf = SalesforceStandIn::start().await;
    let missing_package = apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[]).await;
    relay.accept_until("evt-bulk", 4, EventStatus::Dead).await;
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());

    let listed = cli(&[
        "events",
        "list",
        "--status",
        "dead",
        "--type",
        "order.accepted",
        "--order",
        "o-bulk-2",
        "--since",
        "1h",
        "--output",
        "json",
    ])
    .env("DRSF__STORAGE__URL", &storage)
    .run()
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let ids: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["evt-bulk-2"], "filtered by status, type, order and time");

    drop(missing_package);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let replayed = cli(&[
        "events", "replay", "--status", "dead", "--since", "1h", "--output", "json",
    ])
    .env("DRSF__STORAGE__URL", &storage)
    .run()
    .await;
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    assert_eq!(replayed.json()["replayed"], 4);
    for n in 0..4 {
        relay
            .wait_for_status(&format!("evt-bulk-{n}"), EventStatus::Delivered)
            .await;
    }
}

#[tokio::test]
async fn purge_removes_only_delivered_events_before_the_cut_off() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[]).await;
    relay.accept(&event("order.accepted", "evt-old", "o-old")).await;
    relay.wait_for_status("evt-old", EventStatus::Delivered).await;
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());

    // A cut-off in the past keeps it; one in the future removes it.
    let kept = cli(&[
        "events",
        "purge",
        "--delivered-before",
        "2020-01-01T00:00:00Z",
        "--output",
        "json",
    ])
    .env("DRSF__STORAGE__URL", &storage)
    .run()
    .await;
    assert_eq!(kept.json()["purged"], 0);
    let mut ignored: serde_json::Value =
        serde_json::from_slice(&event("order.accepted", "evt-ignored", "o-i")).unwrap();
    ignored["type"] = "refund.pending".into();
    assert_eq!(
        relay.post_event(&serde_json::to_vec(&ignored).unwrap()).await.status(),
        200
    );
    let counted = cli(&[
        "events",
        "purge",
        "--delivered-before",
        "2099-01-01T00:00:00Z",
        "--dry-run",
    ])
    .env("DRSF__STORAGE__URL", &storage)
    .run()
    .await;
    assert_eq!(counted.code, 0, "{}", counted.stderr);
    assert!(counted.stdout.contains("1 delivered event(s)") && counted.stdout.contains("nothing deleted"));
    let unconfirmed = cli(&["events", "purge", "--delivered-before", "2099-01-01T00:00:00Z"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_ne!(unconfirmed.code, 0, "no terminal, no --yes: nothing deleted");
    assert!(
        unconfirmed.stderr.contains("run again with --yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(relay.status_of("evt-old").await, Some(EventStatus::Delivered));
    let purged = cli(&["events", "purge", "--delivered-before", "2099-01-01T00:00:00Z", "--yes"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(purged.code, 0, "{}", purged.stderr);
    assert!(
        purged.stdout.contains("1 delivered event(s) deleted"),
        "{}",
        purged.stdout
    );
    assert_eq!(relay.status_of("evt-old").await, None);
    assert_eq!(
        relay.status_of("evt-ignored").await,
        Some(EventStatus::Ignored),
        "only delivered events go"
    );
}

#[tokio::test]
async fn retry_now_makes_a_waiting_event_due_at_once_after_the_cause_is_fixed() {
    let sf = SalesforceStandIn::start().await;
    let outage = apex(sf_error(503, "SERVER_UNAVAILABLE", "down"))
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_stepped_app_with(sf, &[("delivery.retry_schedule", "0s,2h,2h")]).await;
    relay.accept(&event("order.accepted", "evt-waiting", "o-w")).await;
    relay.deliver_due().await;
    drop(outage);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    assert_eq!(relay.deliver_due().await, 0, "its next attempt is two hours away");
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());
    let out = cli(&["events", "retry-now", "evt-waiting"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("1 pending event(s) are due now"), "{}", out.stdout);
    assert_eq!(relay.deliver_due().await, 1);
    assert_eq!(relay.status_of("evt-waiting").await, Some(EventStatus::Delivered));
    let finished = cli(&["events", "retry-now", "evt-waiting"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_ne!(finished.code, 0);
    assert!(
        finished.stderr.contains("not pending") && finished.stderr.contains("events replay"),
        "{}",
        finished.stderr
    );
    let all = cli(&["events", "retry-now", "--status", "pending"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(all.code, 0, "{}", all.stderr);
}
