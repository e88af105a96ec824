//! Outbound HTTP: one client builder and one retry rule for every remote call.
//!
//! Every client follows no redirect (a bearer token or API key would go with it to the new
//! host), uses rustls, and names itself; only the timeouts differ. Transient failures are retried
//! by [`retry`]: the caller says per attempt whether a failure is worth another try, the rule
//! decides how long to wait (`base`, then twice as long each time, or what the server asked).

use std::future::Future;
use std::time::Duration;

/// The `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("dr-sf-bridge/", env!("CARGO_PKG_VERSION"));

/// A reqwest client builder with the house rules: no redirects, rustls, our user agent, a
/// request timeout, and a connect timeout of at most 10 s.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(USER_AGENT)
}

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; it doubles on each further one.
    pub base: Duration,
}

impl Backoff {
    /// The delay before retrying after failed attempt `attempt` (1-based), or `None` when the
    /// retries are spent.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        (attempt <= self.retries).then(|| self.base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))))
    }
}

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another try, after `retry_after` when the server said so.
    Transient { error: E, retry_after: Option<Duration> },
    /// Another try would fail the same way.
    Permanent(E),
}

impl<E> Failure<E> {
    pub fn transient(error: E) -> Self {
        Self::Transient {
            error,
            retry_after: None,
        }
    }
}

/// Runs `attempt(1)`, `attempt(2)`, ... until one succeeds, fails permanently, or the retries
/// are spent; answers the last error then. `what` names the call in the retry log line.
pub async fn retry<T, E, Fut>(backoff: Backoff, what: &str, mut attempt: impl FnMut(u32) -> Fut) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let mut number = 0;
    loop {
        number += 1;
        match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(Failure::Permanent(error)) => return Err(error),
            Err(Failure::Transient { error, retry_after }) => match backoff.delay(number) {
                Some(delay) => {
                    tracing::warn!(attempt = number, %error, "{what} failed; retrying");
                    tokio::time::sleep(retry_after.unwrap_or(delay)).await;
                }
                None => return Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_double_until_the_retries_are_spent() {
        let backoff = Backoff {
            retries: 3,
            base: Duration::from_millis(100),
        };
        let delays: Vec<_> = (1..=4).map(|n| backoff.delay(n)).collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                None
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let backoff = Backoff {
            retries: 2,
            base: Duration::from_secs(1),
        };
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry(backoff, "test", |n| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Err(Failure::transient(format!("try {n}"))) }
        })
        .await;
        assert_eq!(result.unwrap_err(), "try 3", "the last error, after 1 + 2 retries");
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry(backoff, "test", |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(Failure::Permanent("no".to_owned())) }
        })
        .await;
        assert_eq!(result.unwrap_err(), "no");
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        let result: Result<u32, String> = retry(backoff, "test", |n| async move {
            if n < 2 {
                Err(Failure::transient("once".to_owned()))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }
}
