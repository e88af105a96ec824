//! One relay per SQLite file: a lock file beside the database, held while the relay runs.
//!
//! Two relays on one file would both claim events (each keeps its leases in its own memory) and
//! deliver some twice. Operations commands beside the relay do not take the lock.

use std::path::Path;

use anyhow::Context;

/// Takes the lock file beside the database (`relay.db.relay-lock`), holding the relay's pid; the
/// kernel releases it when the process ends, however it ends.
pub(super) fn relay_lock(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let lock_path = std::path::PathBuf::from(format!("{}.relay-lock", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        anyhow::bail!(
            "another relay (pid {}) is using {}: one relay per SQLite file; run several relays on PostgreSQL",
            holder.trim(),
            path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}
