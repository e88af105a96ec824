//! Salesforce sign-in: grant bodies, the token answer, the shared cache and the refusal hints.

use std::collections::BTreeMap;
use std::time::Duration;

use dr_sf_bridge::salesforce::SalesforceGrant;
use dr_sf_bridge::salesforce::{AuthError, SalesforceAuth, TokenCache};
use secrecy::ExposeSecret;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::salesforce_standin::*;

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn the_password_grant_sends_the_exact_form_with_the_client_credentials_in_the_body() {
    let logs = capture_logs();
    let sf = SalesforceStandIn::start().await;
    let tokens = sf.token_cache(SalesforceStandIn::password_grant());
    let token = tokens.get().await.expect("a token");
    assert_eq!(token.secret.expose_secret(), &crate::salesforce_standin::token(1));

    let requests = sf.token_requests().await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        form(&request.body),
        map(&[
            ("grant_type", "password"),
            ("username", "integration@acme.com.uat"),
            ("password", SF_PASSWORD),
            ("client_id", "3MVG9consumerKey"),
            ("client_secret", SF_CLIENT_SECRET),
        ])
    );
    assert!(request.headers.get("authorization").is_none(), "no Basic header");
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    logs.assert_no_secret();
}

#[tokio::test]
async fn the_client_credentials_grant_sends_the_exact_form() {
    let logs = capture_logs();
    let sf = SalesforceStandIn::start().await;
    let tokens = sf.token_cache(SalesforceGrant::ClientCredentials);
    tokens.get().await.expect("a token");
    let requests = sf.token_requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        form(&requests[0].body),
        map(&[
            ("grant_type", "client_credentials"),
            ("client_id", "3MVG9consumerKey"),
            ("client_secret", SF_CLIENT_SECRET),
        ])
    );
    assert!(requests[0].headers.get("authorization").is_none(), "no Basic header");
    logs.assert_no_secret();
}

#[tokio::test]
async fn a_salesforce_token_answer_without_expires_in_or_scope_is_accepted() {
    let sf = SalesforceStandIn::start().await;
    let token = sf.token_cache(SalesforceGrant::ClientCredentials).get().await.unwrap();
    assert_eq!(token.instance_url.as_deref(), Some(sf.uri().as_str()));
    assert_eq!(token.issued_at_millis, Some(1_700_000_000_000));
    assert_eq!(token.scope, None);
}

#[tokio::test]
async fn the_token_is_reused_until_it_is_older_than_its_max_age() {
    let sf = SalesforceStandIn::start().await;
    let cached = sf.token_cache(SalesforceGrant::ClientCredentials);
    cached.get().await.unwrap();
    cached.get().await.unwrap();
    assert_eq!(sf.token_requests().await.len(), 1);

    let auth = SalesforceAuth::new(
        sf.credentials(SalesforceGrant::ClientCredentials),
        Duration::from_secs(5),
    )
    .unwrap();
    let always_old = TokenCache::new(auth, Duration::ZERO, Duration::from_secs(300));
    let first = always_old.get().await.unwrap();
    let second = always_old.get().await.unwrap();
    assert_ne!(first.generation, second.generation);
    assert_eq!(sf.token_requests().await.len(), 3);
}

#[tokio::test]
async fn a_refused_grant_is_not_retried_in_a_loop() {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let tokens = sf.token_cache(SalesforceStandIn::password_grant());
    for _ in 0..5 {
        let error = tokens.get().await.unwrap_err();
        assert!(error.is_rejection());
    }
    assert_eq!(tokens.grants(), 1);
}

#[tokio::test]
async fn token_endpoint_outages_are_retried_with_backoff() {
    let sf = SalesforceStandIn::start().await;
    token_endpoint(ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&sf.server)
        .await;
    let token = sf
        .token_cache(SalesforceStandIn::password_grant())
        .get()
        .await
        .expect("the third try works");
    assert_eq!(token.secret.expose_secret(), &crate::salesforce_standin::token(1));
    assert_eq!(sf.token_requests().await.len(), 3);
}

#[tokio::test]
async fn a_token_endpoint_that_stays_down_is_reported_as_unavailable() {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(ResponseTemplate::new(500).set_body_string(""))
        .expect(3)
        .mount(&sf.server)
        .await;
    let error = sf
        .token_cache(SalesforceStandIn::password_grant())
        .get()
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Unavailable { attempts: 3, .. }), "{error}");
}

async fn refusal(error: &str, description: &str, grant: SalesforceGrant) -> String {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error(error, description)).mount(&sf.server).await;
    let message = sf.token_cache(grant).get().await.unwrap_err().to_string();
    assert!(message.contains(error), "{message}");
    for secret in SECRETS {
        assert!(!message.contains(secret));
    }
    message
}

#[tokio::test]
async fn each_token_error_names_its_likely_causes() {
    let password = SalesforceStandIn::password_grant;
    let cc = || SalesforceGrant::ClientCredentials;
    let cases: Vec<(&str, &str, SalesforceGrant, &[&str])> = vec![
        (
            "invalid_grant",
            "authentication failure",
            password(),
            &["security token", "Allow OAuth Username-Password Flows"],
        ),
        (
            "invalid_grant",
            "request not supported on this domain",
            cc(),
            &["My Domain", "salesforce.token_url"],
        ),
        (
            "invalid_grant",
            "no client credentials user enabled",
            cc(),
            &["Run As", "Client Credentials Flow"],
        ),
        (
            "invalid_client_id",
            "client identifier invalid",
            password(),
            &["salesforce.client_id", "Consumer Key"],
        ),
        (
            "invalid_client",
            "invalid client credentials",
            cc(),
            &["salesforce.client_secret", "Consumer Secret"],
        ),
        ("inactive_user", "user is inactive", password(), &["inactive or frozen"]),
        (
            "inactive_org",
            "organization is locked",
            password(),
            &["org is inactive"],
        ),
        ("rate_limit_exceeded", "too many requests", password(), &["wait"]),
    ];
    for (error, description, grant, fragments) in cases {
        let message = refusal(error, description, grant).await;
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{error}/{description}: {fragment:?} missing from: {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let elsewhere = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(ResponseTemplate::new(302).insert_header("location", format!("{}/steal", elsewhere.uri())))
        .mount(&sf.server)
        .await;
    let error = sf
        .token_cache(SalesforceStandIn::password_grant())
        .get()
        .await
        .unwrap_err();
    assert!(
        error.is_rejection() && error.to_string().contains("redirect"),
        "{error}"
    );
}

#[tokio::test]
async fn debug_output_of_credentials_and_tokens_hides_the_secrets() {
    let sf = SalesforceStandIn::start().await;
    let credentials = sf.credentials(SalesforceStandIn::password_grant());
    let token = sf.token_cache(SalesforceStandIn::password_grant()).get().await.unwrap();
    let shown = format!("{credentials:?} {token:?}");
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn a_late_401_for_an_old_token_does_not_throw_away_the_fresh_one() {
    let sf = SalesforceStandIn::start().await;
    let tokens = sf.token_cache(SalesforceStandIn::password_grant());
    let first = tokens.get().await.unwrap();
    tokens.invalidate(first.generation).await;
    let fresh = tokens.get().await.unwrap();
    assert_ne!(fresh.generation, first.generation);
    assert_eq!(tokens.grants(), 2);

    // A delivery that started with the first token hears its 401 only now.
    tokens.invalidate(first.generation).await;
    let still = tokens.get().await.unwrap();
    assert_eq!(still.generation, fresh.generation, "the fresh token is kept");
    assert_eq!(tokens.grants(), 2, "and no extra grant is made");
    assert_eq!(sf.token_requests().await.len(), 2);
}
