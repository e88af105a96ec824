//! Reports as text for a terminal: aligned tables, one fact a line.

use serde_json::Value;

use super::table;
use crate::digital_river::Webhook;
use crate::ops::check::{CheckReport, Status};
use crate::ops::events::EventDetails;
use crate::ops::register::{Action, RegisterReport};
use crate::ops::trigger::TriggerReport;
use crate::store::EventSummary;
use crate::store::attempt_log::{self, Kind};
use crate::support::clock::rfc3339 as time;

/// A table: ID, ENABLED, TRANSPORT, TYPES, ADDRESS.
pub fn webhooks_table(webhooks: &[Webhook]) -> String {
    if webhooks.is_empty() {
        return "No webhooks.\n".to_owned();
    }
    let rows: Vec<[String; 5]> = webhooks
        .iter()
        .map(|w| {
            [
                w.id.clone(),
                w.enabled
                    .map(|e| if e { "yes" } else { "no" })
                    .unwrap_or("?")
                    .to_owned(),
                w.transport_type.clone().unwrap_or_else(|| "?".to_owned()),
                w.types.len().to_string(),
                w.address.clone(),
            ]
        })
        .collect();
    table::render(&["ID", "ENABLED", "TRANSPORT", "TYPES", "ADDRESS"], &rows)
}

/// Key/value lines for one webhook, secrets redacted.
pub fn webhook_details(webhook: &Webhook) -> String {
    let json = webhook.to_redacted_json();
    let mut out = String::new();
    if let Value::Object(map) = json {
        for (key, value) in map {
            match value {
                Value::Array(items) if key == "types" => {
                    out.push_str(&format!("{key}:\n"));
                    for item in items {
                        out.push_str(&format!("  - {}\n", item.as_str().unwrap_or_default()));
                    }
                }
                Value::Object(inner) => {
                    out.push_str(&format!("{key}:\n"));
                    for (k, v) in inner {
                        out.push_str(&format!("  {k}: {}\n", plain(&v)));
                    }
                }
                other => out.push_str(&format!("{key}: {}\n", plain(&other))),
            }
        }
    }
    out
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn events_table(events: &[EventSummary]) -> String {
    if events.is_empty() {
        return "No events.\n".to_owned();
    }
    let rows: Vec<[String; 8]> = events
        .iter()
        .map(|e| {
            [
                e.id.clone(),
                e.event_type.clone(),
                e.target.as_str().to_owned(),
                e.source.as_str().to_owned(),
                e.status.as_str().to_owned(),
                e.attempts.to_string(),
                time(e.received_at_ms),
                // The full text is `events show`'s.
                crate::support::text::one_line(e.last_error.as_deref().unwrap_or_default(), 160),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "TYPE",
            "TARGET",
            "SOURCE",
            "STATUS",
            "ATTEMPTS",
            "RECEIVED",
            "LAST ERROR",
        ],
        &rows,
    )
}

pub fn event_details(details: &EventDetails) -> String {
    let e = &details.event;
    let mut out = format!(
        "id: {}\ntype: {}\nstatus: {}\norder: {}\nlive mode: {} (target: {})\nreceived: {}\nsource: {}\nattempts: {}\n",
        e.id,
        e.event_type,
        e.status.as_str(),
        e.order_key.as_deref().unwrap_or("-"),
        e.live_mode,
        e.target,
        time(e.received_at_ms),
        e.source.as_str(),
        attempt_log::counted(e.attempts, &details.attempts),
    );
    if let Some(next) = e.next_attempt_at_ms {
        out.push_str(&format!("next attempt: {}\n", time(next)));
    }
    for (kind, a) in attempt_log::lines(&details.attempts) {
        let said = |text: &Option<String>| crate::support::text::one_line(text.as_deref().unwrap_or(""), usize::MAX);
        let label = match kind {
            Kind::Replayed => {
                out.push_str(&format!("replayed {} {}\n", time(a.at_ms), attempt_log::replayed_by(a)));
                continue;
            }
            Kind::InSalesforce => {
                out.push_str(&format!(
                    "in Salesforce: {} {} ({})\n    {}\n",
                    time(a.at_ms),
                    a.outcome,
                    a.excerpt.as_deref().unwrap_or("DR_Failed_Event__c"),
                    said(&a.error)
                ));
                continue;
            }
            Kind::Counted(number) => format!("attempt {number}:"),
            Kind::NotCounted => "not counted:".to_owned(),
        };
        out.push_str(&format!(
            "{label} {} {} {} ms {}\n",
            time(a.at_ms),
            a.status_code.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            a.duration_ms,
            a.outcome
        ));
        if a.error.is_some() {
            out.push_str(&format!("    error: {}\n", said(&a.error)));
        }
        if let Some(excerpt) = &a.excerpt {
            out.push_str(&format!("    answer: {excerpt}\n"));
        }
    }
    if let Some(body) = &details.body {
        out.push_str(&format!(
            "body:\n{}\n",
            serde_json::to_string_pretty(body).unwrap_or_default()
        ));
    }
    out
}

/// What `register` did or would do, and the body in a dry run.
pub fn register_report(report: &RegisterReport) -> String {
    let mut out = String::new();
    let id = report.webhook_id.as_deref().unwrap_or("(new)");
    out.push_str(&format!(
        "Webhook {id} for {} (target {}, {} mode): {}\n",
        report.address,
        report.target,
        report.mode,
        report.action.as_str()
    ));
    for change in &report.changes {
        out.push_str(&format!("  {}\n", change.describe()));
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    if let Some(body) = &report.body {
        let method = if report.action == Action::WouldCreate {
            "POST /webhooks".to_owned()
        } else {
            format!("PATCH /webhooks/{id}")
        };
        out.push_str(&format!(
            "Dry run: nothing was written. The request would be {method} with:\n"
        ));
        out.push_str(&serde_json::to_string_pretty(body).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// One line per check, ✓ or ✗, with the fix under a failure.
pub fn check_report(report: &CheckReport) -> String {
    let mut out = String::new();
    for line in &report.checks {
        let mark = match line.status {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Warn => "!",
            Status::Skip => "-",
        };
        out.push_str(&format!("{mark} {}: {}\n", line.name, line.detail));
        if let Some(fix) = &line.fix {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    out.push_str(if report.ok {
        "All checks passed.\n"
    } else {
        "Some checks failed.\n"
    });
    out
}

/// What `trigger` sent.
pub fn trigger_report(report: &TriggerReport) -> String {
    format!(
        "Sent {} event(s) to {}: {} acknowledged in {:.2} s ({:.0}/s).\n",
        report.sent, report.url, report.acknowledged, report.seconds, report.per_second
    )
}

/// What `events backfill` found and stored, a line per mode.
pub fn backfill_report(report: &crate::ops::backfill::BackfillReport) -> String {
    let mut out = format!(
        "Digital River's events from {} to {}{}:\n",
        report.since,
        report.until,
        if report.dry_run {
            " (dry run: nothing stored)"
        } else {
            ""
        }
    );
    for mode in &report.modes {
        let verb = if report.dry_run { "would store" } else { "stored" };
        out.push_str(&format!(
            "  {}: listed {}, already stored {}, {verb} {}",
            mode.mode, mode.listed, mode.already_stored, mode.stored
        ));
        if !mode.skipped.is_empty() {
            let skipped: Vec<String> = mode.skipped.iter().map(|(t, n)| format!("{t} {n}")).collect();
            out.push_str(&format!(", skipped {}", skipped.join(", ")));
        }
        out.push('\n');
    }
    if !report.dry_run && report.modes.iter().any(|m| m.stored > 0) {
        out.push_str("The relay delivers the stored events on its next poll.\n");
    }
    out
}

pub fn keygen_report(report: &crate::ops::keygen::KeygenReport) -> String {
    let mut out = format!(
        "Wrote a {}-bit RSA private key to {} (mode 0600: keep it on the relay's machine only)\n\
         and its certificate to {} (valid until {}).\n\nNext:\n",
        report.bits,
        report.key_file.display(),
        report.certificate_file.display(),
        report.valid_until
    );
    for (n, step) in report.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", n + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Mode;
    use crate::store::{EventSource, EventStatus};

    #[test]
    fn a_multi_line_salesforce_error_stays_on_its_row() {
        let apex = "Salesforce answered 500 APEX_ERROR: System.DmlException: Insert failed. FIELD_CUSTOM_VALIDATION_EXCEPTION, the order status cannot change after fulfilment.\n\nClass.digitalriverv3.WebhookHandler.handle: line 42, column 1";
        let event = EventSummary {
            id: "evt-1".into(),
            event_type: "order.accepted".into(),
            status: EventStatus::Dead,
            live_mode: false,
            target: Mode::Test,
            order_key: None,
            received_at_ms: 0,
            attempts: 3,
            next_attempt_at_ms: None,
            last_status: Some(500),
            last_error: Some(apex.into()),
            source: EventSource::Webhook,
            seq: 1,
        };
        let table = events_table(&[
            event.clone(),
            EventSummary {
                id: "evt-2".into(),
                ..event
            },
        ]);
        assert_eq!(table.lines().count(), 3, "a header and one line per event:\n{table}");
        assert!(table.contains("APEX_ERROR") && table.contains('…'), "{table}");
    }

    #[test]
    fn event_details_number_counted_attempts_since_the_last_replay_and_mark_the_rest() {
        let line = |at_ms, status_code, outcome: &str, error: &str| crate::store::AttemptSummary {
            at_ms,
            status_code,
            duration_ms: 12,
            outcome: outcome.into(),
            error: Some(error.into()),
            excerpt: None,
        };
        let details = EventDetails {
            event: EventSummary {
                id: "evt-1".into(),
                event_type: "order.accepted".into(),
                status: EventStatus::Pending,
                live_mode: false,
                target: Mode::Test,
                order_key: None,
                received_at_ms: 0,
                attempts: 1,
                next_attempt_at_ms: None,
                last_status: Some(503),
                last_error: None,
                source: EventSource::Webhook,
                seq: 1,
            },
            attempts: vec![
                line(1_000, Some(503), "retry", "Salesforce answered 503"),
                line(2_000, Some(401), "auth_rejected", "INVALID_SESSION_ID"),
                line(3_000, Some(503), "dead", "Salesforce answered 503"),
                line(9_000, None, "replayed", crate::store::ReplayedBy::CommandLine.words()),
                line(10_000, Some(503), "retry", "Salesforce answered 503"),
            ],
            body: None,
        };
        let text = event_details(&details);
        assert!(
            text.contains("attempts: 1 counted since the replay at 1970-01-01 00:00:09 UTC\n"),
            "{text}"
        );
        let labels: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .skip_while(|l| !l.starts_with("source:"))
            .skip(2)
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(labels, ["attempt", "not", "attempt", "replayed", "attempt"], "{text}");
        assert!(
            text.contains("attempt 2: 1970-01-01T00:00:03"),
            "the refused sign-in is not counted: {text}"
        );
        assert!(text.contains("by the command line (events replay)"), "{text}");
        assert!(!text.contains("attempt 3:"), "{text}");
    }
}
