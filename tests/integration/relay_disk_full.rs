//! A full disk, for real: the store on a small tmpfs that the test fills. Needs permission to
//! mount (root, as in CI); elsewhere the test says it is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dr_sf_bridge::store::EventStatus;

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// A tmpfs mounted for the test's lifetime.
struct SmallDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { path, _parent: parent })
    }

    /// [`Self::mount`] for the test `name`: CI must be able to; elsewhere the test says it is skipped.
    fn for_test(size: &str, name: &str) -> Option<Self> {
        let disk = Self::mount(size);
        if disk.is_none() {
            assert!(
                std::env::var("CI").is_err(),
                "CI must be able to mount a tmpfs for the disk tests"
            );
            eprintln!("SKIPPED {name}: cannot mount a tmpfs here");
        }
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the disk refuses more.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[tokio::test]
async fn a_full_disk_answers_503_never_2xx_and_readiness_follows() {
    let Some(disk) = SmallDisk::for_test("8m", "a_full_disk_answers_503_never_2xx_and_readiness_follows") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path.join("relay.db").display());
    let sf = SalesforceStandIn::start().await;
    apex(wiremock::ResponseTemplate::new(200)).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[("storage.url", &url)]).await;
    relay.accept(&event("order.accepted", "evt-before-full", "o-0")).await;
    assert_eq!(relay.get("/readyz").await.status(), 200);

    let filler = fill(&disk.path);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for n in 0..2000 {
        let id = format!("evt-full-{n}");
        let status = relay
            .post_event(&event("order.accepted", &id, &format!("o-{n}")))
            .await
            .status();
        match status.as_u16() {
            202 => acknowledged.push(id),
            503 => {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("{id}: {other}; a full disk answers 202 (stored) or 503, nothing else"),
        }
    }
    assert!(refused > 0, "the full disk was noticed");
    assert_eq!(relay.get("/readyz").await.status(), 503, "readiness follows the store");

    std::fs::remove_file(filler).unwrap();
    wait_until("ready again once space is free", || async {
        relay.get("/readyz").await.status() == 200
    })
    .await;
    relay.accept(&event("order.accepted", "evt-after-full", "o-x")).await;
    for id in &acknowledged {
        assert!(
            matches!(
                relay.status_of(id).await,
                Some(EventStatus::Pending | EventStatus::Delivered)
            ),
            "{id} was acknowledged, so it is stored"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), relay.stop()).await;
    drop(disk);
}

#[tokio::test]
async fn a_nearly_full_disk_is_told_before_it_is_full_and_resolved_when_space_is_freed() {
    let Some(disk) = SmallDisk::for_test("8m", "a_nearly_full_disk_is_told_before_it_is_full") else {
        return;
    };
    let hook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let store_url = format!("sqlite://{}", disk.path.join("relay.db").display());
    let hook_url = format!("{}/hook", hook.uri());
    let relay = spawn_stepped_app_with(
        SalesforceStandIn::start().await,
        &[
            ("storage.url", &store_url),
            ("notify.channels.ops.kind", "webhook"),
            ("notify.channels.ops.url", &hook_url),
            ("notify.min_duration_secs", "120"),
        ],
    )
    .await;
    relay.accept(&event("order.accepted", "evt-1", "o-1")).await;
    assert_eq!(relay.notify().await.sent, 0, "a disk with room is no condition");

    // Full, then a twentieth of it freed again: nearly full, still taking events.
    let filler = fill(&disk.path);
    let full = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(full - 400 * 1024)
        .unwrap();
    relay.accept(&event("order.accepted", "evt-2", "o-2")).await;
    assert_eq!(relay.notify().await.sent, 0, "held for notify.min_duration first");
    relay.advance(Duration::from_secs(150));
    assert_eq!(relay.notify().await.sent, 1);
    let told: Vec<serde_json::Value> = hook
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let text = told[0]["text"].as_str().unwrap();
    assert!(text.contains("The store's disk is") && text.contains("full"), "{text}");

    std::fs::remove_file(filler).unwrap();
    relay.advance(Duration::from_secs(30));
    assert_eq!(relay.notify().await.sent, 1, "the resolved message");
    let told = hook.received_requests().await.unwrap();
    let resolved: serde_json::Value = serde_json::from_slice(&told[1].body).unwrap();
    assert!(resolved["text"].as_str().unwrap().contains("Resolved"), "{resolved}");
    drop(disk);
}
