use super::*;
use crate::domain::Mode;
use crate::store::ReplayedBy;

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

fn line(at_ms: i64, status_code: Option<u16>, outcome: &str, error: Option<&str>) -> AttemptSummary {
    AttemptSummary {
        at_ms,
        status_code,
        duration_ms: 12,
        outcome: outcome.into(),
        error: error.map(str::to_owned),
        excerpt: None,
    }
}

/// A dead event's log (two counted failures around a refused sign-in), its replay, and nothing since.
fn replayed_log() -> Vec<AttemptSummary> {
    vec![
        line(1_000, Some(503), "retry", Some("Salesforce answered 503")),
        line(2_000, Some(401), "auth_rejected", Some("INVALID_SESSION_ID")),
        line(3_000, Some(503), "dead", Some("Salesforce answered 503")),
        line(9_000, None, "replayed", Some(ReplayedBy::StatusPage.words())),
    ]
}

#[test]
fn a_replayed_event_says_when_and_by_whom_and_counts_from_there() {
    let mut pending = event(EventStatus::Pending, Some(503), Some("Salesforce answered 503"));
    pending.attempts = 0;
    let log = replayed_log();
    let said = explained(&pending, &log, None, 69_000);
    assert!(said.contains("sent again 1 min ago by the status page"), "{said}");
    assert!(!said.contains("first delivery (or"), "not a new event: {said}");
    assert!(
        attempt_log::counted(0, &log).starts_with("0 counted since the replay at 1970-01-01 00:00:09"),
        "{}",
        attempt_log::counted(0, &log)
    );
}

#[test]
fn attempt_rows_number_the_counted_attempts_and_mark_the_rest() {
    let rows: Vec<String> = attempt_log::lines(&replayed_log())
        .into_iter()
        .map(|(kind, line)| attempt_row(kind, line).into_string())
        .collect();
    assert!(rows[0].starts_with("<tr><td data-label=\"#\">1</td>"), "{}", rows[0]);
    assert!(rows[1].contains("not counted"), "{}", rows[1]);
    assert!(
        rows[2].starts_with("<tr><td data-label=\"#\">2</td>"),
        "the refused sign-in is not attempt 2: {}",
        rows[2]
    );
    assert!(
        rows[3].contains("Sent again by the status page; attempts are counted from here."),
        "{}",
        rows[3]
    );
}
