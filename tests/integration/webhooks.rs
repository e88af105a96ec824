use serde_json::json;

use crate::helpers::*;

fn seeded() -> serde_json::Value {
    json!({
        "id": "wh_42", "address": "https://acme.my.salesforce.com/services/apexrest/digitalriverv3/webhooks/",
        "types": ["order.accepted", "order.complete"], "apiVersion": "default", "enabled": true,
        "transportType": "OAUTH", "createdTime": "2026-01-01T00:00:00Z",
        "oauth": {"clientID": "abc", "grantType": "password"},
        "authentication": {"username": "basic-user", "password": "basic-password-shown-by-dr"}
    })
}

#[tokio::test]
async fn webhooks_list_prints_a_table_and_json() {
    let dr = DrStandIn::start().await;
    dr.seed(seeded());
    let env = [
        ("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri()),
        ("DRSF__DIGITAL_RIVER__API_KEY", API_KEY.to_owned()),
    ];
    let out = cli(&["webhooks", "list"]).envs(&env).run().await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID") && header.contains("ADDRESS"), "{header}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("wh_42")
            && row.contains("yes")
            && row.contains("OAUTH")
            && row.contains("acme.my.salesforce.com"),
        "{row}"
    );

    let json_out = cli(&["webhooks", "list", "--output", "json"]).envs(&env).run().await;
    let list = json_out.json();
    assert_eq!(list[0]["id"], "wh_42");
    assert_eq!(list[0]["authentication"]["password"], "***");
    assert!(!json_out.stdout.contains("basic-password-shown-by-dr"));
}

#[tokio::test]
async fn webhooks_show_redacts_secrets_and_delete_removes() {
    let dr = DrStandIn::start().await;
    dr.seed(seeded());
    let env = [
        ("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri()),
        ("DRSF__DIGITAL_RIVER__API_KEY", API_KEY.to_owned()),
    ];
    let out = cli(&["webhooks", "show", "wh_42"]).envs(&env).run().await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("id: wh_42") && out.stdout.contains("  - order.complete"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("basic-password-shown-by-dr"), "{}", out.stdout);

    let missing = cli(&["webhooks", "show", "wh_nope"]).envs(&env).run().await;
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);

    let deleted = cli(&["webhooks", "delete", "wh_42"]).envs(&env).run().await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(dr.webhooks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn webhooks_commands_need_only_the_dr_key() {
    let out = cli(&["webhooks", "list"]).run().await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("digital_river.api_key"), "{}", out.stderr);
    assert!(!out.stderr.contains("salesforce."), "{}", out.stderr);
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let out = cli(&["register", "--help"]).run().await;
    assert_eq!(out.code, 0);
    for line in [
        "2  invalid configuration",
        "3  rejected by Digital River",
        "4  network or server failure",
        "5  the store failed",
    ] {
        assert!(out.stdout.contains(line), "{}", out.stdout);
    }
}
