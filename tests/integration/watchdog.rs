//! The webhook watchdog: DR disables the webhook without notice; the relay sees it within one look,
//! says so in the metric, the log and the status page's first line, enables it again (one PATCH)
//! and fetches what DR created meanwhile — or, told not to, only reports.

use std::time::Duration;

use dr_sf_bridge::reconcile::Sweep;
use dr_sf_bridge::reconcile::watchdog::WebhookState;
use serde_json::json;

use crate::backfill::Dr;
use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const PUBLIC_URL: &str = "https://relay.acme.test";

/// A stepped relay at `PUBLIC_URL` that reconciles with `dr`, whose webhook for it is enabled.
async fn watched_relay(dr: &Dr, reenable: bool) -> TestRelay {
    dr.api.seed(json!({
        "id": "wh_relay",
        "address": format!("{PUBLIC_URL}/webhooks/digitalriver"),
        "types": eight_types(),
        "enabled": true,
        "transportType": "OAUTH",
        "oauth": {"clientID": INBOUND_CLIENT_ID, "tokenEndPoint": format!("{PUBLIC_URL}/oauth2/token")},
    }));
    let uri = dr.api.uri();
    let reenable = reenable.to_string();
    let overrides = [
        ("digital_river.api_base_url", uri.as_str()),
        ("digital_river.api_key", API_KEY),
        ("digital_river.retry_base_delay_ms", "10"),
        ("reconcile.settle_secs", "0"),
        ("reconcile.reenable_webhook", reenable.as_str()),
        ("register.target", "relay"),
        ("relay.public_url", PUBLIC_URL),
        ("relay.admin_token", crate::status_page::ADMIN_TOKEN),
    ];
    spawn_stepped_app_with(SalesforceStandIn::start().await, &overrides).await
}

fn disable(dr: &Dr) {
    dr.api.webhooks.lock().unwrap()[0]["enabled"] = json!(false);
}

async fn first_line(relay: &TestRelay) -> String {
    let visitor = crate::status_page::Visitor::sign_in(relay).await;
    let (_, page) = visitor.get("/ui/").await;
    let start = page.find("id=\"health\"").expect("the health line");
    page[start..start + 400].to_owned()
}

#[tokio::test]
async fn a_disabled_webhook_is_reported_enabled_again_once_and_the_gap_fetched() {
    let dr = Dr::start().await;
    let relay = watched_relay(&dr, true).await;
    assert_eq!(relay.sweep().await, Sweep::Started);
    assert_eq!(relay.watch().await, WebhookState::Ok);
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_dr_webhook_state{target=\"test\",state=\"ok\"} 1")
    );

    // DR disables the webhook and creates orders it no longer sends.
    disable(&dr);
    let now = relay.clock.now_ms();
    for n in 0..5 {
        dr.create(
            "order.accepted",
            &format!("evt-gap-{n}"),
            &format!("o-{n}"),
            now + n * 1_000,
        );
    }
    relay.advance(Duration::from_secs(600));
    assert_eq!(relay.watch().await, WebhookState::Disabled);

    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("drsf_dr_webhook_state{target=\"test\",state=\"disabled\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("drsf_dr_webhook_state{target=\"test\",state=\"ok\"} 0"));
    assert!(relay.logs.text().contains("state=\"disabled\"") || relay.logs.text().contains("state=disabled"));
    assert!(first_line(&relay).await.contains("DR disabled the webhook"));
    let patches = dr.api.bodies("PATCH").await;
    assert_eq!(
        patches,
        vec![json!({"enabled": true})],
        "one PATCH, enabling it and nothing else"
    );
    assert_eq!(dr.api.webhooks.lock().unwrap()[0]["enabled"], json!(true));
    assert_eq!(
        relay.store.stats().await.unwrap().pending,
        5,
        "what DR created meanwhile is stored"
    );

    assert_eq!(relay.watch().await, WebhookState::Ok, "the next look finds it enabled");
    assert!(!first_line(&relay).await.contains("DR disabled"));
    disable(&dr);
    relay.advance(Duration::from_secs(600));
    assert_eq!(relay.watch().await, WebhookState::Disabled);
    assert_eq!(
        dr.api.bodies("PATCH").await.len(),
        1,
        "not enabled again within the hour"
    );
}

#[tokio::test]
async fn told_not_to_the_relay_only_reports_a_disabled_webhook() {
    let dr = Dr::start().await;
    let relay = watched_relay(&dr, false).await;
    disable(&dr);
    assert_eq!(relay.watch().await, WebhookState::Disabled);
    assert!(dr.api.bodies("PATCH").await.is_empty(), "no PATCH");
    assert!(first_line(&relay).await.contains("DR disabled the webhook"));
    dr.api.webhooks.lock().unwrap().clear();
    assert_eq!(relay.watch().await, WebhookState::Missing);
    assert!(first_line(&relay).await.contains("no webhook for this relay"));
}

#[tokio::test]
async fn hours_without_an_event_while_dr_created_some_is_silence() {
    let dr = Dr::start().await;
    let relay = watched_relay(&dr, true).await;
    assert_eq!(relay.watch().await, WebhookState::Ok);
    relay.advance(Duration::from_secs(7 * 3600));
    assert_eq!(
        relay.watch().await,
        WebhookState::Ok,
        "quiet, but DR created nothing either"
    );

    dr.create("order.accepted", "evt-unheard", "o-1", relay.clock.now_ms() - 3_600_000);
    assert_eq!(relay.watch().await, WebhookState::Silent);
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_dr_webhook_state{target=\"test\",state=\"silent\"} 1")
    );
    assert!(first_line(&relay).await.contains("do not reach the relay"));

    // DR's posts arrive again.
    relay.accept(&event("order.accepted", "evt-heard", "o-2")).await;
    relay.advance(Duration::from_secs(1));
    assert_eq!(relay.watch().await, WebhookState::Ok);
}
