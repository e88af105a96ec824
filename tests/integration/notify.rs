//! Notifications end to end: a stepped relay (its clock moved by the test) tells a chat webhook
//! (a wiremock receiver) and a real SMTP server (Python's `aiosmtpd`) when a condition starts and
//! ends — once, not per event — and nothing for a flap.

use std::time::Duration;

use dr_sf_bridge::domain::Mode;
use dr_sf_bridge::store::EventStatus;
use dr_sf_bridge::store::facts::WebhookSeen;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::notify_email::SmtpServer;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const NOTIFY_SECRET: &str = "notify-signing-secret-0123456789";

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

async fn messages(receiver: &MockServer) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// A stepped relay whose one channel is a Slack-shaped webhook at `hook`.
async fn relay_telling(sf: SalesforceStandIn, hook: &str, extra: &[(&str, &str)]) -> TestRelay {
    let url = format!("{hook}/hook");
    let mut overrides = vec![
        ("notify.channels.ops.kind", "webhook"),
        ("notify.channels.ops.url", url.as_str()),
        ("notify.signing_secret", NOTIFY_SECRET),
        ("relay.public_url", "https://relay.acme.com"),
    ];
    overrides.extend_from_slice(extra);
    spawn_stepped_app_with(sf, &overrides).await
}

fn text(message: &Value) -> String {
    message["text"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn deliveries_failing_past_failing_after_are_told_once_and_resolved_once() {
    let sf = SalesforceStandIn::start().await;
    let outage = apex(sf_error(503, "SERVER_UNAVAILABLE", "down for maintenance"))
        .mount_as_scoped(&sf.server)
        .await;
    let hook = receiver(200).await;
    // Retries far apart on the relay's clock (a busy machine's wall time never makes one due); the
    // third, 30 s ± 10% after the second, is due once the clock moves a minute.
    let relay = relay_telling(sf, &hook.uri(), &[("delivery.retry_schedule", "0s,1m,30s,1m")]).await;
    for n in 0..20 {
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
    }
    relay.deliver_due().await;
    assert_eq!(
        relay.notify().await.queued,
        0,
        "not yet: failing for less than failing_after"
    );
    relay.advance(Duration::from_secs(11 * 60));
    relay.deliver_due().await;
    let step = relay.notify().await;
    assert_eq!(
        (step.queued, step.sent),
        (1, 1),
        "one message for twenty failing events"
    );
    assert_eq!(relay.notify().await.queued, 0, "not repeated at the next look");

    drop(outage);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    relay.advance(Duration::from_secs(60));
    relay.deliver_due().await;
    assert_eq!(relay.status_of("evt-0").await, Some(EventStatus::Delivered));
    assert_eq!(relay.notify().await.sent, 1);

    let told = messages(&hook).await;
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(text(&told[0]).contains("failing since"), "{told:?}");
    let block = told[0]["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        block.contains("nothing is lost") && block.contains("<https://relay.acme.com/ui/|Open the status page>"),
        "{block}"
    );
    assert!(text(&told[1]).contains("Resolved after 12 min"), "{told:?}");
    let request = &hook.received_requests().await.unwrap()[0];
    let signature = request.headers["x-drsf-signature"].to_str().unwrap();
    assert!(signature.starts_with("t=") && signature.contains(",v1="), "{signature}");
    assert!(!String::from_utf8_lossy(&request.body).contains(NOTIFY_SECRET));
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_notifications_total{channel=\"ops\",outcome=\"sent\"} 2")
    );
}

#[tokio::test]
async fn thirty_deaths_within_the_window_are_one_message() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount(&sf.server)
        .await;
    let hook = receiver(200).await;
    let relay = relay_telling(sf, &hook.uri(), &[]).await;
    relay.notify().await;
    for n in 0..30 {
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
    }
    relay.deliver_due().await;
    assert_eq!(relay.status_of("evt-29").await, Some(EventStatus::Dead));
    assert_eq!(relay.notify().await.queued, 0, "the batch window is still open");
    relay.advance(Duration::from_secs(10 * 60));
    assert_eq!(relay.notify().await.sent, 1);
    assert_eq!(relay.notify().await.queued, 0);
    let told = messages(&hook).await;
    assert_eq!(told.len(), 1);
    assert!(text(&told[0]).contains("30 events died in the last 10 min"), "{told:?}");
    assert!(
        told[0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("https://relay.acme.com/ui/events?status=dead")
    );
}

async fn webhook_seen(relay: &TestRelay, state: &str) {
    WebhookSeen {
        ok: state == "ok",
        detail: format!("the watchdog saw the webhook {state}"),
        checked_at_ms: relay.clock.now_ms(),
        state: Some(state.to_owned()),
    }
    .remember(&*relay.store, Mode::Test)
    .await
    .unwrap();
}

#[tokio::test]
async fn drs_webhook_disabled_is_told_at_once_and_resolved_when_enabled_again() {
    let hook = receiver(200).await;
    let admin = [("relay.admin_token", crate::status_page::ADMIN_TOKEN)];
    let relay = relay_telling(SalesforceStandIn::start().await, &hook.uri(), &admin).await;
    webhook_seen(&relay, "disabled").await;
    assert_eq!(relay.notify().await.sent, 1, "at once: a disabled webhook is no flap");
    let (_, overview) = crate::status_page::Visitor::sign_in(&relay).await.get("/ui/").await;
    let listed = overview
        .split("id=\"notifications\"")
        .nth(1)
        .expect("the notifications sent");
    assert!(
        listed.contains("DR disabled the webhook") && listed.contains("ops"),
        "{listed}"
    );
    webhook_seen(&relay, "ok").await;
    relay.advance(Duration::from_secs(30));
    assert_eq!(relay.notify().await.sent, 1);
    let told = messages(&hook).await;
    assert!(text(&told[0]).contains("DR disabled the webhook"), "{told:?}");
    assert!(text(&told[1]).starts_with("[dr-sf-bridge] Resolved"), "{told:?}");
}

#[tokio::test]
async fn a_flapping_org_sends_nothing() {
    let sf = SalesforceStandIn::start().await;
    let hook = receiver(200).await;
    let relay = relay_telling(
        sf,
        &hook.uri(),
        &[
            ("notify.failing_after_secs", "0"),
            ("notify.min_duration_secs", "120"),
            // The retry 20 s ± 10% later: due once the clock moves 30 s, never by wall time alone.
            ("delivery.retry_schedule", "0s,20s,20s,20s"),
        ],
    )
    .await;
    for n in 0..5 {
        let outage = apex(sf_error(503, "SERVER_UNAVAILABLE", "down"))
            .mount_as_scoped(&relay.sf.server)
            .await;
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
        relay.deliver_due().await;
        relay.advance(Duration::from_secs(30));
        relay.notify().await;
        drop(outage);
        let healthy = apex(ResponseTemplate::new(200)).mount_as_scoped(&relay.sf.server).await;
        relay.deliver_due().await;
        assert_eq!(relay.status_of(&format!("evt-{n}")).await, Some(EventStatus::Delivered));
        relay.advance(Duration::from_secs(30));
        relay.notify().await;
        drop(healthy);
    }
    assert!(
        messages(&hook).await.is_empty(),
        "failing 30 s, fine 30 s, five times: no message"
    );
}

#[tokio::test]
async fn a_failing_channel_is_retried_later_and_counted() {
    let hook = receiver(500).await;
    let relay = relay_telling(SalesforceStandIn::start().await, &hook.uri(), &[]).await;
    webhook_seen(&relay, "disabled").await;
    let step = relay.notify().await;
    assert_eq!((step.sent, step.failed), (0, 1));
    assert_eq!(relay.notify().await.failed, 0, "not again before its delay");
    relay.advance(Duration::from_secs(61));
    assert_eq!(relay.notify().await.failed, 1, "tried again");
    assert_eq!(hook.received_requests().await.unwrap().len(), 2);
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_notifications_total{channel=\"ops\",outcome=\"failed\"} 2")
    );
    // Events are taken meanwhile as ever.
    relay.accept(&event("order.accepted", "evt-meanwhile", "o-1")).await;
}

#[tokio::test]
async fn two_relays_on_one_postgresql_store_send_each_message_once() {
    let Some(schema) = crate::pg::fresh_schema("notify_two_relays").await else {
        return;
    };
    let hook = receiver(200).await;
    let storage = [("storage.url", schema.url.as_str())];
    let first = relay_telling(SalesforceStandIn::start().await, &hook.uri(), &storage).await;
    let second = relay_telling(SalesforceStandIn::start().await, &hook.uri(), &storage).await;
    webhook_seen(&first, "disabled").await;
    // Both look at once (each relay's notifier runs on its own schedule).
    let (a, b) = tokio::join!(first.notify(), second.notify());
    assert_eq!(a.sent + b.sent, 1, "{a:?} {b:?}");
    let (a, b) = tokio::join!(first.notify(), second.notify());
    assert_eq!(a.sent + b.sent, 0);
    assert_eq!(messages(&hook).await.len(), 1);
}

#[tokio::test]
async fn a_refused_sign_in_is_one_email_and_its_end_another_with_200_events_waiting() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let sf = SalesforceStandIn::bare().await;
    let refusal = token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .mount_as_scoped(&sf.server)
        .await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let port = smtp.port.to_string();
    let relay = spawn_stepped_app_with(
        sf,
        &[
            ("notify.channels.admin.kind", "email"),
            ("notify.channels.admin.host", "127.0.0.1"),
            ("notify.channels.admin.port", port.as_str()),
            ("notify.channels.admin.tls", "none"),
            ("notify.channels.admin.from", "relay@acme.com"),
            ("notify.channels.admin.to", "admin@acme.com"),
        ],
    )
    .await;
    for n in 0..200 {
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
    }
    relay.deliver_due().await;
    assert_eq!(relay.notify().await.sent, 1, "told at once");
    relay.advance(Duration::from_secs(30));
    relay.deliver_due().await;
    assert_eq!(relay.notify().await.queued, 0, "not once per event, nor per look");

    drop(refusal);
    token_endpoint(ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token(1),
        "instance_url": relay.sf.uri(),
        "token_type": "Bearer",
        "issued_at": "1700000000000"
    })))
    .mount(&relay.sf.server)
    .await;
    relay.advance(Duration::from_secs(301)); // past salesforce.token_failure_cooldown_secs
    relay.deliver_due().await;
    assert_eq!(relay.status_of("evt-199").await, Some(EventStatus::Delivered));
    assert_eq!(relay.notify().await.sent, 1);

    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails[0].contains("Subject: [dr-sf-bridge] Sign-in refused"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("invalid_grant"), "{}", mails[0]);
    assert!(mails[1].contains("Subject: [dr-sf-bridge] Resolved"), "{}", mails[1]);
    for mail in &mails {
        assert!(
            !mail.contains(SF_PASSWORD) && !mail.contains(SF_CLIENT_SECRET),
            "{mail}"
        );
    }
}

#[tokio::test]
async fn notify_test_sends_a_sample_to_each_channel_and_says_what_each_answered() {
    let working = receiver(200).await;
    let broken = receiver(500).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "DRSF__STORAGE__URL",
            format!("sqlite://{}", dir.path().join("relay.db").display()),
        ),
        ("DRSF__NOTIFY__CHANNELS__OPS__KIND", "webhook".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__OPS__URL", format!("{}/hook", working.uri())),
        ("DRSF__NOTIFY__CHANNELS__OPS__FORMAT", "teams".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__BROKEN__KIND", "webhook".to_owned()),
        (
            "DRSF__NOTIFY__CHANNELS__BROKEN__URL",
            format!("{}/hook?token=SECRETTOKEN123", broken.uri()),
        ),
    ];
    let out = cli(&["notify", "test"]).envs(&env).run().await;
    assert_eq!(out.code, 1, "one channel failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("✓ ops:") && out.stdout.contains("answered 200"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("✗ broken:") && out.stdout.contains("answered 500"),
        "{}",
        out.stdout
    );
    assert!(
        !format!("{}{}", out.stdout, out.stderr).contains("SECRETTOKEN123"),
        "the URL's secret is not shown"
    );
    let card = &messages(&working).await[0];
    assert_eq!(card["@type"], "MessageCard", "format = teams");

    let only = cli(&["notify", "test", "--channel", "ops"]).envs(&env).run().await;
    assert_eq!(only.code, 0, "{}", only.stderr);
    assert_eq!(messages(&broken).await.len(), 1, "--channel sends to that channel only");
    let unknown = cli(&["notify", "test", "--channel", "pager"]).envs(&env).run().await;
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("no channel `pager`") && unknown.stderr.contains("broken, ops"),
        "{}",
        unknown.stderr
    );
}
