//! How much room is left on the disk that holds a SQLite store: a full disk refuses new events
//! (DR retries them), so an admin is told before it is full, not when it is. PostgreSQL's disk is
//! the database server's, out of the relay's sight.

use std::path::Path;

/// Below this share of the disk free, the store's disk is nearly full (a condition).
pub const NEARLY_FULL_FREE_PERCENT: u64 = 10;

/// Room on one file system, as an unprivileged process may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskSpace {
    #[serde(rename = "freeBytes")]
    pub free_bytes: u64,
    #[serde(rename = "totalBytes")]
    pub total_bytes: u64,
}

impl DiskSpace {
    /// The file system holding `path` (a directory or a file), or `None` when it cannot be asked.
    pub fn of(path: &Path) -> Option<Self> {
        let stat = rustix::fs::statvfs(path).ok()?;
        let block = stat.f_frsize.max(1);
        Some(Self {
            free_bytes: stat.f_bavail.saturating_mul(block),
            total_bytes: stat.f_blocks.saturating_mul(block),
        })
    }

    /// Whole percent of the disk in use, as `df` shows it.
    pub fn used_percent(&self) -> u64 {
        if self.total_bytes == 0 {
            return 0;
        }
        100 - (self.free_bytes.min(self.total_bytes) as u128 * 100 / self.total_bytes as u128) as u64
    }

    pub fn nearly_full(&self) -> bool {
        self.total_bytes > 0
            && (self.free_bytes as u128) * 100 < (self.total_bytes as u128) * NEARLY_FULL_FREE_PERCENT as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearly_full_is_under_a_tenth_free() {
        let disk = |free_bytes| DiskSpace {
            free_bytes,
            total_bytes: 1000,
        };
        assert!(disk(99).nearly_full());
        assert!(!disk(100).nearly_full());
        assert_eq!(disk(99).used_percent(), 91);
        assert!(
            !DiskSpace {
                free_bytes: 0,
                total_bytes: 0
            }
            .nearly_full()
        );
    }

    #[test]
    fn the_disk_of_a_directory_here_can_be_asked() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::of(dir.path()).expect("statvfs of a temporary directory");
        assert!(space.total_bytes >= space.free_bytes && space.total_bytes > 0);
    }
}
