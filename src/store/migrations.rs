//! The schema's versions, one list for both engines: migration `n` is the same change on SQLite
//! and on PostgreSQL, each in its own dialect, so "schema 4" means one thing everywhere (and
//! `store copy` can move a store between engines of the same build).
//!
//! Each engine runs the list its own way — SQLite records the number in `PRAGMA user_version`,
//! PostgreSQL in `schema_migrations`, under an advisory lock so that relays starting together
//! migrate once — but both apply what is missing in order and refuse a schema newer than the list.
//!
//! Releases before this list numbered PostgreSQL's migrations on their own (its first one also
//! made `relay_state`, SQLite's second): [`aligned_postgres_version`] reads those databases.

/// One change of the schema.
#[derive(Debug)]
pub struct Migration {
    /// 1, 2, ...: its place in the list.
    pub number: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Migration `$number`, from `migrations/<engine>/<$file>_<$name>.sql` of each engine.
macro_rules! migration {
    ($number:literal, $file:literal, $name:literal) => {
        Migration {
            number: $number,
            name: $name,
            sqlite: include_str!(concat!("migrations/sqlite/", $file, "_", $name, ".sql")),
            postgres: include_str!(concat!("migrations/postgres/", $file, "_", $name, ".sql")),
        }
    };
}

pub const MIGRATIONS: [Migration; 6] = [
    migration!(1, "0001", "events_and_attempts"),
    migration!(2, "0002", "relay_state"),
    migration!(3, "0003", "due_by_mode"),
    migration!(4, "0004", "status_page"),
    migration!(5, "0005", "event_source"),
    migration!(6, "0006", "trace_parent"),
];

/// The schema version this build brings a store to.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// The migrations a store at `applied` still needs, in order; an error for a store a newer build
/// has migrated.
pub fn pending(applied: i64) -> Result<&'static [Migration], String> {
    if applied > LATEST {
        return Err(format!(
            "the store is at schema version {applied}, newer than this build's {LATEST}: run the newer dr-sf-bridge"
        ));
    }
    Ok(&MIGRATIONS[applied.max(0) as usize..])
}

/// A PostgreSQL database's version in this list's numbering, from the highest version its
/// `schema_migrations` records. Releases before the shared list stopped at 3 (their 1 was this
/// list's 1 and 2, their 2 and 3 are 3 and 4); every build since records at least 4, since
/// PostgreSQL applies all missing migrations in one transaction.
pub fn aligned_postgres_version(recorded: i64) -> i64 {
    const FIRST_ALIGNED: i64 = 4;
    if recorded > 0 && recorded < FIRST_ALIGNED {
        recorded + 1
    } else {
        recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_numbered_one_by_one_on_both_engines() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.number, index as i64 + 1, "{}", migration.name);
            assert!(!migration.sqlite.trim().is_empty() && !migration.postgres.trim().is_empty());
        }
        let files = |engine: &str| {
            std::fs::read_dir(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/store/migrations")
                    .join(engine),
            )
            .unwrap()
            .count()
        };
        assert_eq!(
            (files("sqlite"), files("postgres")),
            (MIGRATIONS.len(), MIGRATIONS.len())
        );
    }

    #[test]
    fn what_is_pending_follows_the_applied_version() {
        assert_eq!(pending(0).unwrap().len(), MIGRATIONS.len());
        assert_eq!(pending(3).unwrap()[0].name, "status_page");
        assert!(pending(LATEST).unwrap().is_empty());
        assert!(pending(LATEST + 1).unwrap_err().contains("newer"));
    }

    #[test]
    fn a_database_of_an_earlier_release_is_read_in_the_shared_numbering() {
        assert_eq!(aligned_postgres_version(0), 0, "an empty schema");
        assert_eq!(
            aligned_postgres_version(1),
            2,
            "its first migration made relay_state too"
        );
        assert_eq!(
            aligned_postgres_version(3),
            4,
            "the last release before the shared list"
        );
        assert_eq!(aligned_postgres_version(4), 4);
        assert_eq!(aligned_postgres_version(7), 7);
    }
}
