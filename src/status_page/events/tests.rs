use super::*;
use crate::domain::Mode;

fn event(status: EventStatus, last_status: Option<u16>, last_error: Option<&str>) -> EventSummary {
    EventSummary {
        source: Default::default(),
        id: "evt-1".into(),
        event_type: "order.accepted".into(),
        status,
        live_mode: false,
        target: Mode::Test,
        order_key: Some("240010330336".into()),
        received_at_ms: 0,
        attempts: 2,
        next_attempt_at_ms: Some(90_000),
        last_status,
        last_error: last_error.map(str::to_owned),
        seq: 1,
    }
}

#[test]
fn a_dead_event_says_what_salesforce_answered_and_what_to_do() {
    let org = Some("https://acme.my.salesforce.com/services/apexrest/digitalriverv3/webhooks/");
    let missing = why(&event(EventStatus::Dead, Some(404), Some("not found")), org, 0);
    assert!(
        missing.starts_with("Dead: Salesforce answered 404 — the DR package is not installed at https://acme."),
        "{missing}"
    );
    let invalid = why(&event(EventStatus::Dead, Some(400), Some("INVALID_FIELD")), org, 0);
    assert!(
        invalid.contains("invalid (400)") && invalid.contains("INVALID_FIELD"),
        "{invalid}"
    );
    let denied = why(
        &event(EventStatus::Dead, Some(403), Some("INSUFFICIENT_ACCESS")),
        org,
        0,
    );
    assert!(denied.contains("permissions"), "{denied}");
}

#[test]
fn a_dead_500_says_it_once_and_names_the_fix() {
    let said = "Salesforce answered 500 APEX_ERROR: System.NullPointerException: Attempt to de-reference a null object";
    let dead = why(
        &event(EventStatus::Dead, Some(500), Some(said)),
        Some("https://acme.my.salesforce.com"),
        0,
    );
    assert_eq!(dead.matches("answered 500").count(), 1, "{dead}");
    assert!(dead.contains("APEX_ERROR: System.NullPointerException"), "{dead}");
    assert!(dead.contains("Debug Logs") && dead.contains("send it again"), "{dead}");
    let other = why(
        &event(
            EventStatus::Dead,
            Some(502),
            Some("Salesforce answered 502: bad gateway"),
        ),
        None,
        0,
    );
    assert_eq!(other.matches("answered 502").count(), 1, "{other}");
}

#[test]
fn a_pending_event_says_when_it_is_tried_next() {
    let waiting = why(
        &event(EventStatus::Pending, Some(503), Some("Salesforce answered 503")),
        None,
        30_000,
    );
    assert_eq!(
        waiting,
        "Pending: 2 attempts failed (Salesforce answered 503); the next is in 1 min."
    );
    let mut fresh = event(EventStatus::Pending, None, None);
    fresh.attempts = 0;
    assert!(why(&fresh, None, 0).contains("first delivery"));
    assert_eq!(
        why(&event(EventStatus::Delivered, Some(200), None), None, 0),
        "Delivered: Salesforce accepted it."
    );
}

#[test]
fn a_body_is_shown_indented_or_as_it_came() {
    assert_eq!(pretty(br#"{"a":{"b":1}}"#), "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
    assert_eq!(pretty(b"not json"), "not json");
}
