//! A notification channel that fails must cost ingestion and delivery nothing: the same load
//! (see [`super::side_by_side`]) against relays without a channel (A) and with one whose every
//! send is answered 500 after a second's wait (B). While the org is down the relay keeps trying
//! to tell it (a look every 5 s, told at once, each failure retried); while the backlog drains the
//! "resolved" message fails too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::side_by_side::{ROUNDS, arm};
use super::{Report, Scale};

/// A chat webhook that answers every message 500, a second late; counts what it was sent.
async fn failing_channel() -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

pub async fn scenarios(report: &mut Report, scale: &Scale, storage_base: &str, dir: &std::path::Path) {
    let (channel, received) = failing_channel().await;
    let fresh = |name: &str| storage_base.replace(".db", &format!("-{name}.db"));
    let rounds = scale.n(ROUNDS, 1);
    let looks = [
        ("DRSF__NOTIFY__CHECK_INTERVAL_SECS", "5".to_owned()),
        ("DRSF__NOTIFY__FAILING_AFTER_SECS", "0".to_owned()),
        ("DRSF__NOTIFY__MIN_DURATION_SECS", "0".to_owned()),
    ];
    let mut with_channel = looks.to_vec();
    with_channel.push(("DRSF__NOTIFY__CHANNELS__OPS__KIND", "webhook".to_owned()));
    with_channel.push(("DRSF__NOTIFY__CHANNELS__OPS__URL", channel.clone()));
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        without.push(arm(scale, dir, &fresh(&format!("a{round}")), &looks).await);
        with.push(arm(scale, dir, &fresh(&format!("b{round}")), &with_channel).await);
    }
    let told = received.load(Ordering::Relaxed);

    let (rows, mut data, all_within) = super::side_by_side::compare(&without, &with);
    let errors: usize = without.iter().chain(&with).map(|a| a.errors).sum();
    data.insert("rounds".into(), json!(rounds));
    data.insert("channelRequests".into(), json!(told));
    data.insert("errors".into(), json!(errors));
    report.add(
        "notify_channel_failing",
        "sqlite",
        format!(
            "with a channel answering 500 / without (medians of {rounds} runs each): {}; the channel was sent {told} request(s), {errors} errors",
            rows.join(", ")
        ),
        Some((
            "each ratio within the spread, the channel tried",
            all_within && told > 0 && errors == 0,
        )),
        serde_json::Value::Object(data),
    );
}
