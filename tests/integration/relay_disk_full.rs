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
    let Some(disk) = SmallDisk::mount("8m") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to mount a tmpfs for the disk-full test"
        );
        eprintln!("SKIPPED a_full_disk_answers_503_never_2xx_and_readiness_follows: cannot mount a tmpfs here");
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
