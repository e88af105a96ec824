//! The command line: clap definitions, the dispatch to each operation, and the one place where
//! errors become exit codes.
//!
//! Each command is an operation in [`crate::ops`] that returns a report; this module only loads
//! settings, renders the report as text ([`render`]) or JSON, and turns errors into exit codes.
//! Exit codes are a contract with scripts: 0 success, 1 a check that did not pass or a request
//! that cannot be done (unknown event), 2 invalid configuration, 3 rejected by Digital River,
//! 4 network or server failure, 5 the store failed or does not exist.

mod events_cli;
mod live;
pub mod render;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::{Application, shutdown_signal};
use crate::domain::EventType;

use crate::ops::register::{self, ModeChoice, RegisterOptions};
use crate::ops::trigger::{self, TriggerOptions};
use crate::ops::{OpsError, check, webhooks};
use crate::settings::{self, LoadOptions, Purpose, RegisterTarget, Settings};

use crate::support::text::error_chain;
use crate::telemetry::{self, LogFormat};

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  a check did not pass (check), or the request cannot be done (unknown event)
  2  invalid configuration (every problem is listed, each with its key)
  3  rejected by Digital River (the message names each parameter DR complained about)
  4  network or server failure (Digital River or Salesforce unreachable or failing)
  5  the store failed, or there is no store at storage.url";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable text and tables.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// The process exit code for an error (see the module documentation).
pub fn exit_code(error: &OpsError) -> u8 {
    match error {
        OpsError::Config(_) => 2,
        OpsError::DigitalRiver(e) if e.is_rejection() => 3,
        OpsError::DigitalRiver(_) => 4,
        OpsError::Refused(_) => 1,
        OpsError::Unreachable(_) => 4,
        OpsError::Store(_) => 5,
        // The relay's start-up: a store it cannot open (locked, unreachable) is the store's code.
        OpsError::Other(e) if e.chain().any(|cause| cause.is::<crate::store::StoreError>()) => 5,
        OpsError::Other(_) => 4,
    }
}

/// Connects Digital River webhooks to the DR Salesforce Lightning app.
#[derive(Debug, Parser)]
#[command(name = "dr-sf-bridge", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration environment: `sandbox` or `production` (layers config/{env}.toml).
    #[arg(long, global = true, env = "DRSF_ENV")]
    pub env: Option<String>,
    /// An extra configuration file, layered over config/ and under DRSF__* variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The folder with default.toml, sandbox.toml and production.toml.
    #[arg(long, global = true, env = "DRSF_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// How commands print their result.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Log lines as text or JSON (stderr).
    #[arg(long, global = true, value_enum, default_value_t, env = "DRSF_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the OAuth webhook on Digital River (setup step 11); safe to run again.
    #[command(after_help = EXIT_CODES)]
    Register {
        /// Where DR sends events: straight to Salesforce, or to the relay. Default: register.target.
        #[arg(long, value_enum)]
        target: Option<RegisterTarget>,
        /// Which DR mode's webhook, each with its mode's key. Default: every mode a Salesforce
        /// target takes.
        #[arg(long, value_enum)]
        mode: Option<ModeChoice>,
        /// Print the plan and the request body (secrets as "***"); write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Update even when nothing comparable differs (re-sends secrets DR does not show).
        #[arg(long)]
        force: bool,
    },
    /// Delete the webhook `register` manages for the target.
    #[command(after_help = EXIT_CODES)]
    Unregister {
        /// Whose webhook: the one to Salesforce or the one to the relay. Default: register.target.
        #[arg(long, value_enum)]
        target: Option<RegisterTarget>,
        /// Which DR mode's webhook. Default: every mode a Salesforce target takes.
        #[arg(long, value_enum)]
        mode: Option<ModeChoice>,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// See the connector work on this machine, with nothing to configure: a relay, a stand-in
    /// Salesforce org and DR's eight order events.
    Demo {
        /// Leave the relay and the stand-in running, and say how to send more events.
        #[arg(long)]
        keep_running: bool,
    },
    /// Run the relay: receive DR's events, store them, deliver them to Salesforce.
    Relay,
    /// Send realistic sample events to a relay exactly as Digital River would (signed, with the
    /// relay's inbound credentials from the configuration).
    #[command(after_help = EXIT_CODES)]
    Trigger {
        /// The event type, e.g. order.accepted.
        event_type: String,
        /// How many events.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// The order id every event carries (default: a new order per event).
        #[arg(long)]
        order: Option<String>,
        /// The relay's base URL (default: relay.public_url, else relay.listen on this machine).
        #[arg(long)]
        url: Option<String>,
    },
    /// Exit 0 when the relay answers /readyz with 200, non-zero otherwise (the container's
    /// health check).
    Healthcheck {
        /// The relay's base URL (default: relay.listen on this machine).
        url: Option<String>,
    },
    /// Check the configuration, DR, the webhook, the Salesforce sign-in and the DR package.
    #[command(after_help = EXIT_CODES)]
    Check,
    /// List, show, replay, backfill or purge the events the relay stored.
    #[command(subcommand, after_help = EXIT_CODES)]
    Events(events_cli::EventsCommand),
    /// List, show or delete the account's webhooks on Digital River.
    #[command(subcommand, after_help = EXIT_CODES)]
    Webhooks(WebhooksCommand),
    /// Move the relay's store: every event and attempt, from SQLite to PostgreSQL or back.
    #[command(subcommand, after_help = EXIT_CODES)]
    Store(StoreCommand),
    /// Notifications: send a test message to each channel.
    #[command(subcommand, after_help = EXIT_CODES)]
    Notify(NotifyCommand),
    /// Salesforce helpers: the JWT bearer flow's key and certificate.
    #[command(subcommand, after_help = EXIT_CODES)]
    Salesforce(SalesforceCommand),
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample message to every `[notify.channels.<name>]` (or one) and say what each
    /// answered; exits 1 when one failed.
    Test {
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SalesforceCommand {
    /// Write a new RSA private key (mode 0600) and a self-signed certificate for the connected
    /// app ("Use digital signatures"), and print the Setup steps. The key is never printed.
    Keygen {
        /// The folder to write dr-sf-bridge-salesforce.key and .crt into.
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
        /// The key's size in bits (2048 or more).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Replace a key and certificate already in the folder.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every event and attempt into another store (created if missing). Safe to run again:
    /// it goes on where it stopped and never copies an event twice. Stop the relays first.
    Copy {
        /// The store to copy, e.g. sqlite:///var/lib/dr-sf-bridge/relay.db.
        #[arg(long)]
        from: String,
        /// The store to copy into, e.g. postgres://relay@db.internal:5432/relay.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Every webhook of the account.
    List,
    /// One webhook, secrets redacted.
    Show {
        /// The webhook's id (`webhooks list` shows them).
        id: String,
    },
    /// Delete one webhook.
    Delete {
        /// The webhook's id (`webhooks list` shows them).
        id: String,
    },
}

impl Cli {
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            env: self.env.clone(),
            config_file: self.config.clone(),
            config_dir: self.config_dir.clone(),
            overrides: Vec::new(),
            ignore_environment: false,
        }
    }

    fn settings(&self, purpose: Purpose) -> Result<Settings, OpsError> {
        Ok(settings::load(&self.load_options(), purpose)?)
    }

    /// `register` or `unregister` for each chosen mode: one report as an object, several as a list.
    async fn register(
        &self,
        target: Option<RegisterTarget>,
        mode: Option<ModeChoice>,
        dry_run: bool,
        force: bool,
        remove: bool,
    ) -> Result<Printed, OpsError> {
        let (target, settings) = self.register_settings(target)?;
        let options = RegisterOptions {
            target,
            mode: settings.salesforce.primary().mode,
            dry_run,
            force,
        };
        let reports = register::for_each_mode(&settings, mode, options, remove).await?;
        let text = || reports.iter().map(render::register_report).collect::<String>();
        Ok(match reports.as_slice() {
            [one] => print_as(self.output, one, text),
            several => print_as(self.output, &several, text),
        }
        .into())
    }

    /// The register target (the flag, else `register.target`) and the settings validated for it,
    /// from one reading of the configuration.
    fn register_settings(&self, flag: Option<RegisterTarget>) -> Result<(RegisterTarget, Settings), OpsError> {
        let raw = settings::load_raw(&self.load_options())?;
        // An invalid `register.target` is reported by `validate` with every other problem.
        let target = flag
            .or_else(|| raw.register_target())
            .unwrap_or(RegisterTarget::Salesforce);
        Ok((target, raw.validate(Purpose::Register(target))?))
    }
}

/// Parses the command line, runs the command, and answers the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Demo { .. }) {
        "error"
    } else if matches!(cli.command, Command::Relay) {
        "info"
    } else {
        "warn"
    };
    // The relay's settings are read before logging starts (they say whether spans are exported)
    // and then used to run it; a configuration with problems is read again, to report them.
    let relay_settings = matches!(cli.command, Command::Relay)
        .then(|| cli.settings(Purpose::Relay).ok())
        .flatten();
    let traces = relay_settings
        .as_ref()
        .map(|settings| &settings.telemetry)
        .filter(|telemetry| telemetry.otlp_endpoint.is_some());
    let _exporting = telemetry::init(cli.log_format, level, traces);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(execute_with(&cli, relay_settings)) {
        Ok(printed) => {
            print!("{}", printed.stdout);
            ExitCode::from(printed.exit)
        }
        Err(e) => {
            match cli.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({"error": format!("{e:#}"), "exitCode": exit_code(&e)})
                ),
                OutputFormat::Text => {}
            }
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn print_as<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) -> String {
    match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(value).unwrap_or_default()),
        OutputFormat::Text => text(),
    }
}

/// What a command prints on stdout, and its exit code (a check can fail without an error).
#[derive(Debug)]
pub struct Printed {
    pub stdout: String,
    pub exit: u8,
}

impl From<String> for Printed {
    fn from(stdout: String) -> Self {
        Self { stdout, exit: 0 }
    }
}

/// Runs the parsed command and answers what to print on stdout.
pub async fn execute(cli: &Cli) -> Result<Printed, OpsError> {
    execute_with(cli, None).await
}

/// [`execute`], with the relay's settings when they were read already.
async fn execute_with(cli: &Cli, relay_settings: Option<Settings>) -> Result<Printed, OpsError> {
    match &cli.command {
        Command::Register {
            target,
            mode,
            dry_run,
            force,
        } => cli.register(*target, *mode, *dry_run, *force, false).await,
        Command::Unregister { target, mode, dry_run } => cli.register(*target, *mode, *dry_run, false, true).await,
        Command::Relay => {
            let settings = match relay_settings {
                Some(settings) => settings,
                None => cli.settings(Purpose::Relay)?,
            };
            let app = Application::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(String::new().into())
        }
        Command::Demo { keep_running } => live::demo(cli.output, *keep_running).await,
        Command::Trigger {
            event_type,
            count,
            order,
            url,
        } => {
            let settings = cli.settings(Purpose::Store)?;
            let event_type = EventType::parse(event_type).map_err(OpsError::Refused)?;
            let options = TriggerOptions {
                event_type,
                count: *count,
                order: order.clone(),
                url: url.clone(),
            };
            let bar = (*count > 1 && cli.output == OutputFormat::Text).then(|| live::progress_bar(u64::from(*count)));
            let report = trigger::trigger(&settings, options, |n| {
                if let Some(bar) = &bar {
                    bar.set_position(u64::from(n));
                }
            })
            .await;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let report = report?;
            Ok(print_as(cli.output, &report, || render::trigger_report(&report)).into())
        }
        Command::Healthcheck { url } => {
            let url = match url {
                Some(url) => url.clone(),
                None => trigger::local_relay_url(&cli.settings(Purpose::Store)?),
            };
            trigger::healthcheck(&url).await?;
            let json = serde_json::json!({"ready": url});
            Ok(print_as(cli.output, &json, || format!("{url} is ready.\n")).into())
        }
        Command::Check => {
            let report = check::check(&cli.load_options()).await;
            let text = print_as(cli.output, &report, || render::check_report(&report));
            let exit = match (report.config_invalid, report.ok) {
                (true, _) => 2,
                (false, false) => 1,
                (false, true) => 0,
            };
            Ok(Printed { stdout: text, exit })
        }
        Command::Events(sub) => events_cli::run(cli, sub).await,
        Command::Store(StoreCommand::Copy { from, to }) => live::store_copy(cli.output, from, to).await,
        Command::Notify(NotifyCommand::Test { channel }) => {
            let settings = cli.settings(Purpose::Store)?;
            let answers = crate::notify::test_channels(&settings, channel.as_deref()).await?;
            let failed = answers.iter().any(|a| !a.ok);
            let text = print_as(cli.output, &answers, || {
                answers
                    .iter()
                    .map(|a| format!("{} {}: {}\n", if a.ok { "✓" } else { "✗" }, a.channel, a.answer))
                    .collect()
            });
            Ok(Printed {
                exit: u8::from(failed),
                ..text.into()
            })
        }
        Command::Salesforce(SalesforceCommand::Keygen { out, bits, force }) => {
            let (out, bits, force) = (out.clone(), *bits, *force);
            let report = tokio::task::spawn_blocking(move || crate::ops::keygen::keygen(&out, bits, force))
                .await
                .map_err(|e| OpsError::Refused(format!("key generation stopped: {e}")))??;
            Ok(print_as(cli.output, &report, || render::keygen_report(&report)).into())
        }
        Command::Webhooks(sub) => {
            let settings = cli.settings(Purpose::DigitalRiverApi)?;
            match sub {
                WebhooksCommand::List => {
                    let hooks = webhooks::list(&settings).await?;
                    let json: Vec<_> = hooks.iter().map(|w| w.to_redacted_json()).collect();
                    Ok(print_as(cli.output, &json, || render::webhooks_table(&hooks)).into())
                }
                WebhooksCommand::Show { id } => {
                    let hook = webhooks::show(&settings, id).await?;
                    Ok(print_as(cli.output, &hook.to_redacted_json(), || render::webhook_details(&hook)).into())
                }
                WebhooksCommand::Delete { id } => {
                    webhooks::delete(&settings, id).await?;
                    let json = serde_json::json!({"deleted": id});
                    Ok(print_as(cli.output, &json, || format!("Webhook {id} deleted.\n")).into())
                }
            }
        }
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every option and argument of every command, without a one-line description.
    fn undescribed(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                found.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_about().is_none() && sub.get_long_about().is_none() && sub.get_name() != "help" {
                found.push(format!("{path} {} (the command)", sub.get_name()));
            }
            undescribed(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_option_and_argument_has_a_description() {
        let mut found = Vec::new();
        undescribed(&Cli::command(), "dr-sf-bridge", &mut found);
        assert!(found.is_empty(), "without a description:\n{}", found.join("\n"));
    }
}
