use super::*;

#[test]
fn error_bodies_name_each_parameter() {
    let body = r#"{"type":"bad_request","errors":[{"code":"invalid_parameter","parameter":"address","message":"Address is invalid."},{"message":"Types are required."}]}"#;
    let err = classify_failure(StatusCode::BAD_REQUEST, body, 1);
    let text = err.to_string();
    assert!(
        text.contains("parameter `address`: Address is invalid. [invalid_parameter]"),
        "{text}"
    );
    assert!(text.contains("Types are required."), "{text}");
    assert!(err.is_rejection());
}

#[test]
fn secrets_in_unknown_fields_are_redacted_for_display() {
    let webhook: Webhook = serde_json::from_value(json!({
        "id": "wh_1", "address": "https://x", "types": [],
        "oauth": {"clientID": "id", "clientSecret": "s3cr3t", "password": "pw"},
        "authentication": {"username": "u", "password": "basic-pw"}
    }))
    .unwrap();
    let shown = webhook.to_redacted_json().to_string();
    for secret in ["s3cr3t", "pw\"", "basic-pw"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("\"username\":\"u\""), "{shown}");
}
