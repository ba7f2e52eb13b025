//! Which store the [`crate::Harness`] servers use: SQLite in their data directory (default) or,
//! with `COUNTERSIGN_TEST_BACKEND=postgres` (set for a whole run, never by a test), a fresh
//! PostgreSQL database per harness (`crate::postgres::TestDatabase`). `.ci/test` runs the
//! integration scenarios both ways; a scenario about SQLite itself (its file, its disk)
//! starts with [`crate::sqlite_only!`].

/// Whether this run's harnesses use PostgreSQL.
pub fn postgres() -> bool {
    std::env::var("COUNTERSIGN_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// Ends a test that is about SQLite itself when the run is on PostgreSQL, saying so.
#[macro_export]
macro_rules! sqlite_only {
    ($why:literal) => {
        if $crate::backend::postgres() {
            eprintln!("SKIPPED on PostgreSQL: {}", $why);
            return;
        }
    };
}
