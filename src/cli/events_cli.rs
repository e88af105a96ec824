//! `events list | show | replay | backfill | purge`: the store seen from the command line.

use clap::Subcommand;

use super::{Cli, OutputFormat, Printed, print_as, render};
use crate::domain::{EventType, OrderKey};
use crate::ops::backfill::{self, BackfillOptions};
use crate::ops::register::ModeChoice;
use crate::ops::{OpsError, events};
use crate::settings::Purpose;
use crate::store::{EventFilter, EventStatus, replay};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The newest events, filtered.
    List {
        /// Only events of this status.
        #[arg(long, value_enum)]
        status: Option<EventStatus>,
        /// Only this event type, e.g. order.accepted.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only this order id.
        #[arg(long)]
        order: Option<String>,
        /// Only events received since a time (2026-11-23T03:00:00Z) or an age (2h).
        #[arg(long, value_parser = events::parse_time)]
        since: Option<i64>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One event with every delivery attempt.
    Show {
        /// The event's id (DR's, as `events list` shows it).
        id: String,
        /// Also print the stored body (the order data DR sent).
        #[arg(long)]
        body: bool,
    },
    /// Deliver a dead, delivered or failed_in_salesforce event again, with fresh attempts: one by
    /// id, or all of a status (`--status dead [--since 2h]`).
    Replay {
        /// The event's id; or give --status instead.
        #[arg(required_unless_present = "status", conflicts_with_all = ["status", "since"])]
        id: Option<String>,
        /// Every event of this status (dead, delivered, failed_in_salesforce or recovered).
        #[arg(long, value_enum)]
        status: Option<EventStatus>,
        /// With --status: only events received since a time or an age.
        #[arg(long, value_parser = events::parse_time, requires = "status")]
        since: Option<i64>,
    },
    /// Store what Digital River created in a window and the store does not hold (a relay outage
    /// longer than DR's retries, a disabled webhook), from DR's Events API (30 days back at most);
    /// the relay delivers them as usual.
    Backfill {
        /// The window's start: a time (2026-11-23T03:00:00Z) or an age (2d).
        #[arg(long, value_parser = events::parse_time)]
        since: i64,
        /// Its end (default: now).
        #[arg(long, value_parser = events::parse_time)]
        until: Option<i64>,
        /// Only this mode's events (default: every Salesforce target's).
        #[arg(long, value_enum)]
        mode: Option<ModeChoice>,
        /// List and compare with the store; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deliver pending events now instead of at their next scheduled attempt, once the cause is
    /// fixed: one by id, or all with --status pending. Their attempts stay counted.
    RetryNow {
        /// The pending event's id; or give --status pending instead.
        #[arg(required_unless_present = "status", conflicts_with = "status")]
        id: Option<String>,
        /// Every pending event (only `pending` is accepted).
        #[arg(long, value_enum)]
        status: Option<EventStatus>,
    },
    /// Delete delivered events received before a time (2026-11-01T00:00:00Z) or an age (30days).
    Purge {
        /// Delete delivered events received before this time or age (`30d`, `2026-11-01T00:00:00Z`).
        #[arg(long, value_parser = events::parse_time)]
        delivered_before: i64,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete without asking (scripts); otherwise a terminal is asked, and anything else refused.
        #[arg(long)]
        yes: bool,
    },
}

/// `events backfill`: DR's Events API against the store, with a spinner on a terminal.
async fn backfill_events(
    cli: &Cli,
    since: i64,
    until: Option<i64>,
    mode: Option<ModeChoice>,
    dry_run: bool,
) -> Result<Printed, OpsError> {
    let settings = cli.settings(Purpose::Backfill)?;
    let options = BackfillOptions {
        since_ms: since,
        until_ms: until,
        modes: ModeChoice::modes(mode, &settings),
        dry_run,
    };
    let bar = (cli.output == OutputFormat::Text).then(indicatif::ProgressBar::new_spinner);
    let report = backfill::backfill(&settings, options, |mode, listed| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{mode}: {listed} events listed"));
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    Ok(print_as(cli.output, &report, || render::backfill_report(&report)).into())
}

pub(super) async fn run(cli: &Cli, sub: &EventsCommand) -> Result<Printed, OpsError> {
    if let EventsCommand::Backfill {
        since,
        until,
        mode,
        dry_run,
    } = sub
    {
        return backfill_events(cli, *since, *until, *mode, *dry_run).await;
    }
    let settings = cli.settings(Purpose::Store)?;
    match sub {
        EventsCommand::Backfill { .. } => unreachable!("answered above, with its own settings"),
        EventsCommand::List {
            status,
            event_type,
            order,
            since,
            limit,
        } => {
            let filter = EventFilter {
                status: *status,
                event_type: event_type
                    .as_deref()
                    .map(EventType::parse)
                    .transpose()
                    .map_err(OpsError::Refused)?,
                order_key: order.clone().map(OrderKey::from_stored),
                since_ms: *since,
                limit: *limit,
                ..Default::default()
            };
            let list = events::list(&settings, filter).await?;
            Ok(print_as(cli.output, &list, || render::events_table(&list)).into())
        }
        EventsCommand::Replay {
            id: None,
            status: Some(status),
            since,
        } => {
            let bar = (cli.output == OutputFormat::Text).then(indicatif::ProgressBar::new_spinner);
            let replayed = events::replay_all(&settings, *status, *since, |n| {
                if let Some(bar) = &bar {
                    bar.set_message(format!("{n} events replayed"));
                }
            })
            .await;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let replayed = replayed?;
            let json = serde_json::json!({"replayed": replayed, "status": status.as_str()});
            Ok(print_as(cli.output, &json, || {
                let mut text = format!(
                    "{replayed} {} event(s) are pending again; the relay delivers them on its next poll.\n",
                    status.as_str()
                );
                if let Some(note) = replay::note_before(*status) {
                    text.push_str(&format!("Note: {note}\n"));
                }
                text
            })
            .into())
        }
        EventsCommand::RetryNow { id, status } => {
            if status.is_some_and(|s| s != EventStatus::Pending) {
                return Err(OpsError::Refused(
                    "retry-now takes pending events only (`--status pending`); `events replay` sends finished ones again"
                        .into(),
                ));
            }
            let due = events::retry_now(&settings, id.as_deref()).await?;
            let json = serde_json::json!({"dueNow": due});
            Ok(print_as(cli.output, &json, || {
                format!("{due} pending event(s) are due now; the relay delivers them at its next poll.\n")
            })
            .into())
        }
        EventsCommand::Purge {
            delivered_before,
            dry_run,
            yes,
        } => {
            let before = crate::support::text::time(*delivered_before);
            let count = events::count_purgeable(&settings, *delivered_before).await?;
            if *dry_run || count == 0 {
                let json = serde_json::json!({"wouldPurge": count, "purged": 0});
                return Ok(print_as(cli.output, &json, || {
                    format!("{count} delivered event(s) received before {before} would be deleted; nothing deleted.\n")
                })
                .into());
            }
            if !*yes && !confirmed(&format!("Delete {count} delivered event(s) received before {before}?")) {
                return Err(OpsError::Refused(format!(
                    "{count} delivered event(s) received before {before} would be deleted: run again with --yes to \
                     delete them (or --dry-run to count only)"
                )));
            }
            let purged = events::purge(&settings, *delivered_before).await?;
            let json = serde_json::json!({"purged": purged});
            Ok(print_as(cli.output, &json, || format!("{purged} delivered event(s) deleted.\n")).into())
        }
        EventsCommand::Show { id, body } => {
            let details = events::show(&settings, id, *body).await?;
            Ok(print_as(cli.output, &details, || render::event_details(&details)).into())
        }
        EventsCommand::Replay { id, .. } => {
            let id = id.as_deref().unwrap_or_default();
            let note = events::replay(&settings, id).await?;
            let json = serde_json::json!({"replayed": id, "note": note});
            Ok(print_as(cli.output, &json, || {
                let mut text = format!("Event {id} is pending again; the relay delivers it on its next poll.\n");
                if let Some(note) = note {
                    text.push_str(&format!("Note: {note}\n"));
                }
                text
            })
            .into())
        }
    }
}

/// Whether the person at the terminal answers yes to `question`; `false` without a terminal.
fn confirmed(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}
