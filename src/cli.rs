//! The command line: clap definitions and the dispatch to each command's function.
//!
//! Each command is a library function that returns a report; this module only loads settings,
//! renders the report as text or JSON, and turns errors into exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::check;
use crate::command::{CommandError, OutputFormat, error_chain};
use crate::events;
use crate::register::{self, RegisterOptions};
use crate::relay::Application;
use crate::relay::app::shutdown_signal;
use crate::settings::{self, LoadOptions, Purpose, RegisterTarget, Settings};
use crate::store::EventStatus;
use crate::telemetry::{self, LogFormat};
use crate::webhooks;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  a check did not pass (check), or the request cannot be done (unknown event)
  2  invalid configuration (every problem is listed, each with its key)
  3  rejected by Digital River (the message names each parameter DR complained about)
  4  network, server or store failure (Digital River or Salesforce unreachable or failing)";

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
        #[arg(long, value_enum)]
        target: Option<RegisterTarget>,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the relay: receive DR's events, store them, deliver them to Salesforce.
    Relay,
    /// Check the configuration, DR, the webhook, the Salesforce sign-in and the DR package.
    #[command(after_help = EXIT_CODES)]
    Check,
    /// List, show or replay the events the relay stored.
    #[command(subcommand, after_help = EXIT_CODES)]
    Events(EventsCommand),
    /// List, show or delete the account's webhooks on Digital River.
    #[command(subcommand, after_help = EXIT_CODES)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Every webhook of the account.
    List,
    /// One webhook, secrets redacted.
    Show { id: String },
    /// Delete one webhook.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The newest events, optionally of one status.
    List {
        #[arg(long, value_parser = ["pending", "delivered", "dead", "ignored"])]
        status: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One event with every delivery attempt.
    Show {
        id: String,
        /// Also print the stored body (the order data DR sent).
        #[arg(long)]
        body: bool,
    },
    /// Deliver a dead (or delivered) event again, with fresh attempts.
    Replay { id: String },
}

impl Cli {
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            env: self.env.clone(),
            config_file: self.config.clone(),
            config_dir: self.config_dir.clone(),
            overrides: Vec::new(),
        }
    }

    fn settings(&self, purpose: Purpose) -> Result<Settings, CommandError> {
        Ok(settings::load(&self.load_options(), purpose)?)
    }

    /// The register target (the flag, else `register.target`) and the settings validated for it,
    /// from one reading of the configuration.
    fn register_settings(&self, flag: Option<RegisterTarget>) -> Result<(RegisterTarget, Settings), CommandError> {
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
    let level = if matches!(cli.command, Command::Relay) {
        "info"
    } else {
        "warn"
    };
    telemetry::init(cli.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(execute(&cli)) {
        Ok(printed) => {
            print!("{}", printed.stdout);
            ExitCode::from(printed.exit)
        }
        Err(e) => {
            match cli.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({"error": format!("{e:#}"), "exitCode": e.code()})
                ),
                OutputFormat::Text => {}
            }
            eprintln!("error: {}", error_chain(&e));
            e.exit_code()
        }
    }
}

fn render<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) -> String {
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
pub async fn execute(cli: &Cli) -> Result<Printed, CommandError> {
    match &cli.command {
        Command::Register { target, dry_run, force } => {
            let (target, settings) = cli.register_settings(*target)?;
            let report = register::register(
                &settings,
                RegisterOptions {
                    target,
                    dry_run: *dry_run,
                    force: *force,
                },
            )
            .await?;
            Ok(render(cli.output, &report, || report.render_text()).into())
        }
        Command::Unregister { target, dry_run } => {
            let (target, settings) = cli.register_settings(*target)?;
            let report = register::unregister(
                &settings,
                RegisterOptions {
                    target,
                    dry_run: *dry_run,
                    force: false,
                },
            )
            .await?;
            Ok(render(cli.output, &report, || report.render_text()).into())
        }
        Command::Relay => {
            let settings = cli.settings(Purpose::Relay)?;
            let app = Application::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(String::new().into())
        }
        Command::Check => {
            let report = check::check(&cli.load_options()).await;
            let text = render(cli.output, &report, || report.render_text());
            let exit = match (report.config_invalid, report.ok) {
                (true, _) => 2,
                (false, false) => 1,
                (false, true) => 0,
            };
            Ok(Printed { stdout: text, exit })
        }
        Command::Events(sub) => {
            let settings = cli.settings(Purpose::Store)?;
            match sub {
                EventsCommand::List { status, limit } => {
                    let status = status.as_deref().and_then(EventStatus::parse);
                    let list = events::list(&settings, status, *limit).await?;
                    Ok(render(cli.output, &list, || events::render_list(&list)).into())
                }
                EventsCommand::Show { id, body } => {
                    let details = events::show(&settings, id, *body).await?;
                    Ok(render(cli.output, &details, || events::render_details(&details)).into())
                }
                EventsCommand::Replay { id } => {
                    events::replay(&settings, id).await?;
                    let json = serde_json::json!({"replayed": id});
                    Ok(render(cli.output, &json, || {
                        format!("Event {id} is pending again; the relay delivers it on its next poll.\n")
                    })
                    .into())
                }
            }
        }
        Command::Webhooks(sub) => {
            let settings = cli.settings(Purpose::DigitalRiverApi)?;
            match sub {
                WebhooksCommand::List => {
                    let hooks = webhooks::list(&settings).await?;
                    let json: Vec<_> = hooks.iter().map(|w| w.to_redacted_json()).collect();
                    Ok(render(cli.output, &json, || webhooks::render_table(&hooks)).into())
                }
                WebhooksCommand::Show { id } => {
                    let hook = webhooks::show(&settings, id).await?;
                    Ok(render(cli.output, &hook.to_redacted_json(), || webhooks::render_details(&hook)).into())
                }
                WebhooksCommand::Delete { id } => {
                    webhooks::delete(&settings, id).await?;
                    let json = serde_json::json!({"deleted": id});
                    Ok(render(cli.output, &json, || format!("Webhook {id} deleted.\n")).into())
                }
            }
        }
    }
}
