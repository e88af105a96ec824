//! A waiting event on its page: delivered at once when the admin says the cause is fixed.

use dr_sf_bridge::store::EventStatus;
use wiremock::ResponseTemplate;

use super::{ADMIN_TOKEN, Visitor};
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

#[tokio::test]
async fn a_waiting_event_is_delivered_at_once_from_its_page_once_the_cause_is_fixed() {
    let sf = SalesforceStandIn::start().await;
    let failing = apex(sf_error(503, "SERVER_UNAVAILABLE", "down for maintenance"))
        .expect(1)
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_app_with(
        sf,
        &[("relay.admin_token", ADMIN_TOKEN), ("delivery.retry_schedule", "0s,1h")],
    )
    .await;
    relay.accept(&event("order.accepted", "evt-waiting", "o-waiting")).await;
    wait_until("the first attempt failed", || async {
        relay.stored("evt-waiting").await.1.len() == 1
    })
    .await;
    let visitor = Visitor::sign_in(&relay).await;
    let (_, page) = visitor.get("/ui/events/evt-waiting").await;
    assert!(page.contains(r#"id="retry-now""#), "{page}");
    assert!(page.contains("Pending: 1 attempt failed"), "{page}");

    drop(failing);
    apex(ResponseTemplate::new(200)).expect(1).mount(&relay.sf.server).await;
    let path = "/ui/events/evt-waiting/retry-now";
    assert_eq!(visitor.post(path, &[]).await.status(), 403, "the form needs its token");
    let csrf = visitor.csrf("/ui/events/evt-waiting").await;
    let response = visitor.post(path, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/events/evt-waiting?due_now=true");
    relay.wait_for_status("evt-waiting", EventStatus::Delivered).await;
    let (_, page) = visitor.get("/ui/events/evt-waiting").await;
    assert!(!page.contains(r#"id="retry-now""#), "nothing waits any more: {page}");
}
