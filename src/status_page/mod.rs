//! `/ui/`: the status page, for the Salesforce admin who would rather look at a page than run
//! commands on a server — is the connector healthy, what is stuck, and one click to send it again.
//!
//! It exists only when `relay.admin_token` is set (the routes are not there otherwise), and signing
//! in takes that token once, on a form: after that a signed cookie carries the session
//! ([`session`]). One middleware stands before every page but the sign-in form and checks the
//! session, and the CSRF token of every form sent, so that a new page or form cannot forget to. Pages are rendered on the server from [`maud`] templates, without
//! script: [`overview`] (the health line, the last day's traffic, the targets' state) and
//! [`events`] (the list, an event's page, replay).

mod events;
mod layout;
mod overview;
mod replay;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::inbound_auth::same_secret;
use crate::http::paths;
use crate::http::state::AppState;
use crate::http::throttle::{ClientIp, retry_after};
use crate::support::clock::now_ms;
use session::{Session, Sessions};

/// The largest form the pages send (a CSRF token and a few fields), in bytes.
const MAX_FORM_BYTES: usize = 4 * 1024;
/// How long a wrong token waits for its answer: guessing is slow even before the throttle.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(750);

/// The status page's routes, or none without an admin token.
pub fn router(state: &AppState) -> Router<AppState> {
    let Some(token) = state.admin_token.clone() else {
        return Router::new();
    };
    let ui = Ui {
        sessions: Arc::new(Sessions::new(&token, state.secure_cookies)),
        token: Arc::new(token),
    };
    let pages = Router::new()
        .route(paths::UI_HOME, get(overview::show))
        .route(paths::UI_EVENTS, get(events::list))
        .route(paths::UI_EVENT, get(events::show))
        .route(paths::UI_EVENT_REPLAY, get(replay::confirm_replay).post(replay::replay))
        .route(paths::UI_EVENT_RETRY_NOW, post(replay::retry_now))
        .route(
            paths::UI_REPLAY_DEAD,
            get(replay::confirm_replay_dead).post(replay::replay_dead),
        )
        .route(paths::UI_SIGN_OUT, post(sign_out))
        .route_layer(middleware::from_fn_with_state(ui.sessions.clone(), require_session));
    Router::new()
        .route(paths::UI_BARE, get(|| async { Redirect::permanent(paths::UI_HOME) }))
        .route(paths::UI_SIGN_IN, get(sign_in_form).post(sign_in))
        .merge(pages)
        .layer(middleware::from_fn(page_headers))
        .layer(Extension(ui))
}

/// What the status page's handlers share besides the relay's state.
#[derive(Clone)]
pub(crate) struct Ui {
    sessions: Arc<Sessions>,
    token: Arc<SecretString>,
}

/// The signed-in session, with its CSRF token for the page's forms.
#[derive(Clone)]
pub(crate) struct SignedIn {
    session: Session,
    csrf: String,
}

/// Every page but the sign-in form needs a session: without one, a page is redirected to the
/// sign-in form (which comes back to it afterwards). Every form sent (`POST`) must also carry the
/// session's CSRF token, checked here for all of them, so that a new form cannot forget to.
async fn require_session(State(sessions): State<Arc<Sessions>>, request: Request, next: Next) -> Response {
    let Some(session) = sessions.current(request.headers(), now_ms()) else {
        let back = if request.method() == Method::GET {
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or(paths::UI_HOME)
        } else {
            paths::UI_HOME
        };
        let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        return Redirect::to(&format!("{}?next={next}", paths::UI_SIGN_IN)).into_response();
    };
    let signed_in = SignedIn {
        csrf: sessions.csrf(&session),
        session,
    };
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let Ok(form) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return forbidden(&signed_in);
        };
        let given = url::form_urlencoded::parse(&form)
            .find(|(key, _)| key == "csrf")
            .map(|(_, v)| v);
        if !sessions.csrf_matches(&signed_in.session, given.as_deref()) {
            return forbidden(&signed_in);
        }
        axum::body::Body::from(form)
    } else {
        body
    };
    parts.extensions.insert(signed_in);
    next.run(Request::from_parts(parts, body)).await
}

/// Pages are never cached, never framed, and load nothing from elsewhere.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

#[derive(Deserialize)]
struct NextPage {
    next: Option<String>,
}

/// Only a status page address is followed after signing in, never another site's.
fn next_page(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with(paths::UI_HOME) && !next.starts_with("//") && !next.contains('\\') => next,
        _ => paths::UI_HOME,
    }
}

async fn sign_in_form(Query(query): Query<NextPage>) -> Html<String> {
    Html(sign_in_page(next_page(query.next.as_deref()), None).into_string())
}

fn sign_in_page(next: &str, problem: Option<&str>) -> Markup {
    layout::page(
        "Sign in",
        None,
        html! {
            div.signin.panel {
                h1 { "Sign in" }
                p.muted { "Enter the relay's admin token (" code { "relay.admin_token" } ")." }
                @if let Some(problem) = problem {
                    p.error role="alert" { (problem) }
                }
                form method="post" action=(paths::UI_SIGN_IN) {
                    input type="hidden" name="next" value=(next);
                    label { "Admin token"
                        input type="password" name="token" id="token" autocomplete="current-password" required autofocus;
                    }
                    p { button.primary type="submit" id="sign-in" { "Sign in" } }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    token: SecretString,
    next: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn sign_in(
    State(state): State<AppState>,
    Extension(ui): Extension<Ui>,
    ClientIp(client): ClientIp,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = next_page(form.next.as_deref()).to_owned();
    if let Err(wait) = state.throttle.check(client) {
        state.metrics.rejected("throttled");
        let page = sign_in_page(
            &next,
            Some("Too many wrong tokens from this address: wait a minute, then try again."),
        );
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Html(page.into_string())).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    if same_secret(form.token.expose_secret(), ui.token.expose_secret()) {
        state.throttle.succeeded(client);
        tracing::info!(client = %crate::support::text::client_address(client), "signed in to the status page");
        let cookie = ui.sessions.start(now_ms());
        let mut response = Redirect::to(&next).into_response();
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("a plain cookie"),
        );
        return response;
    }
    state.metrics.rejected("ui_wrong_token");
    let blocked = state.throttle.failed(client);
    tracing::warn!(client = %crate::support::text::client_address(client), blocked, "refused a status page sign-in: not the admin token");
    tokio::time::sleep(WRONG_TOKEN_DELAY).await;
    let page = sign_in_page(&next, Some("That is not the admin token."));
    (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response()
}

async fn sign_out(Extension(ui): Extension<Ui>) -> Response {
    let mut response = Redirect::to(paths::UI_SIGN_IN).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&ui.sessions.end()).expect("a plain cookie"),
    );
    response
}

/// A state-changing form without this session's CSRF token: refused, nothing done.
fn forbidden(signed_in: &SignedIn) -> Response {
    tracing::warn!("refused a status page form without its CSRF token");
    let page = layout::page(
        "Refused",
        Some(&signed_in.csrf),
        html! {
            h1 { "Refused" }
            p.error role="alert" { "This form did not come from this page (its security token is missing or out of date). Nothing was changed." }
            p { a href=(paths::UI_HOME) { "Back to the overview" } }
        },
    );
    (StatusCode::FORBIDDEN, Html(page.into_string())).into_response()
}

/// The store did not answer: the page says so instead of a blank error.
fn store_failed(signed_in: &SignedIn, error: &crate::store::StoreError) -> Response {
    tracing::error!(error = %error, "status page: the store failed");
    let page = layout::page(
        "Store unavailable",
        Some(&signed_in.csrf),
        html! {
            h1 { "The store is unavailable" }
            p.error role="alert" { "The relay cannot read its store right now: " (error) }
        },
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(page.into_string())).into_response()
}
