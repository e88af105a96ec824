//! The commands that show their work as it happens: `demo`'s live account and progress bars.

use super::{OutputFormat, Printed, print_as};
use crate::app::shutdown_signal;
use crate::ops::{OpsError, demo, store_copy};

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(super) fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    bar
}

/// `demo`: the live account on stdout (stderr with `--output json`), then the report.
pub(super) async fn demo(output: OutputFormat, keep_running: bool) -> Result<Printed, OpsError> {
    let running = demo::run(|line| match output {
        OutputFormat::Text => println!("{line}"),
        OutputFormat::Json => eprintln!("{line}"),
    })
    .await?;
    let report = running.report.clone();
    if keep_running {
        use secrecy::ExposeSecret;
        let c = &running.credentials;
        println!(
            "\nThe relay and the stand-in org keep running until ctrl-c. In another terminal, with this demo's\n\
             throwaway credentials:\n\n  export DRSF__RELAY__INBOUND_CLIENT_ID={}\n  export DRSF__RELAY__INBOUND_CLIENT_SECRET={}\n  \
             export DRSF__DIGITAL_RIVER__SIGNING_SECRETS={}\n  export DRSF__STORAGE__URL={}\n\n  \
             dr-sf-bridge trigger order.complete --count 100 --url {url}\n  curl {url}/metrics\n  dr-sf-bridge events list\n\n\
             The status page: {url}/ui/ — sign in with the admin token {}",
            c.client_id,
            c.client_secret.expose_secret(),
            c.signing_secret.expose_secret(),
            running.storage_url,
            c.admin_token.expose_secret(),
            url = report.relay_url,
        );
        shutdown_signal().await;
    }
    running.stop().await?;
    Ok(match output {
        OutputFormat::Json => print_as(output, &report, String::new).into(),
        OutputFormat::Text => String::new().into(),
    })
}

/// `store copy`, with a progress bar while it runs.
pub(super) async fn store_copy(output: OutputFormat, from: &str, to: &str) -> Result<Printed, OpsError> {
    let bar = (output == OutputFormat::Text).then(|| progress_bar(0));
    let report = store_copy::copy(from, to, |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done.read);
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    Ok(print_as(output, &report, || {
        format!(
            "Copied {} event(s) from {} to {} ({} were there already).\n",
            report.copied, report.from, report.to, report.already_there
        )
    })
    .into())
}
