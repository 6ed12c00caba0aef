//! Test support (feature `test-support`): a fresh PostgreSQL database per test,
//! dropped when the test ends, so tests can run in parallel and share nothing.
//!
//! Without `TEST_POSTGRES_URL` a PostgreSQL case returns early, and libtest
//! counts it as passed (it has no runtime skip). So that nobody mistakes it
//! for a pass, each such case writes `SKIPPED <test>: …` with a running count
//! to the process's standard error, which libtest does not capture; and with
//! `KEYWARDEN_REQUIRE_POSTGRES=1` (as CI sets) the case fails instead.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::{Connection, PgConnection, RunQueryDsl};

/// Set to `1` to make a PostgreSQL case without `TEST_POSTGRES_URL` fail.
pub const REQUIRE_POSTGRES: &str = "KEYWARDEN_REQUIRE_POSTGRES";

/// PostgreSQL cases skipped so far in this test binary.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// A database created for one test on the server `TEST_POSTGRES_URL` names.
pub struct TestDatabase {
    base_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `None` when `TEST_POSTGRES_URL` is not set, after reporting the calling
    /// test as skipped: the caller returns. Call it on the test's own thread
    /// (its name is the test's), or use [`Self::fresh`] from async code.
    ///
    /// # Panics
    /// When the server named by `TEST_POSTGRES_URL` cannot create a database:
    /// a configured but broken server must fail the test, not skip it. And
    /// when the variable is unset but `KEYWARDEN_REQUIRE_POSTGRES=1`.
    pub fn create() -> Option<Self> {
        server_url().map(Self::create_on)
    }

    /// [`Self::create`] for async tests: the skip is reported on the test's
    /// thread, the database created on a blocking one.
    ///
    /// # Panics
    /// As [`Self::create`].
    pub async fn fresh() -> Option<Self> {
        let base_url = server_url()?;
        match tokio::task::spawn_blocking(move || Self::create_on(base_url)).await {
            Ok(database) => Some(database),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    fn create_on(base_url: String) -> Self {
        let name = format!("keywarden_test_{}", uuid_like());
        crate::postgres::init_tls();
        let mut admin = PgConnection::establish(&base_url)
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL does not connect: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
        let url = with_database(&base_url, &name);
        Self {
            base_url,
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the server's maintenance connection (not in this database),
    /// e.g. to cut this database off and let it back.
    pub fn execute_on_server(&self, sql: &str) {
        let mut admin = PgConnection::establish(&self.base_url)
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL does not connect: {e}"));
        diesel::sql_query(sql)
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.base_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// The server `TEST_POSTGRES_URL` names; `None` after reporting the calling
/// test as skipped.
fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_POSTGRES_URL") {
        return Some(url);
    }
    let required = std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v == "1");
    let thread = std::thread::current();
    // Not `eprintln!`: libtest captures that for passing tests.
    report_skip(
        thread.name().unwrap_or("<unnamed test>"),
        required,
        &mut std::io::stderr().lock(),
    );
    None
}

/// Writes the skip line for `test` to `out` and returns how many were skipped
/// so far.
///
/// # Panics
/// When PostgreSQL is `required`: the case must fail, not pass unrun.
fn report_skip(test: &str, required: bool, out: &mut impl Write) -> usize {
    assert!(
        !required,
        "{test} needs PostgreSQL: TEST_POSTGRES_URL is not set and {REQUIRE_POSTGRES}=1"
    );
    let skipped = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = writeln!(
        out,
        "SKIPPED {test}: TEST_POSTGRES_URL is not set ({skipped} PostgreSQL case(s) skipped in this test binary so far)"
    );
    skipped
}

/// Replaces the database in a URL, keeping its query (e.g. `sslmode`).
fn with_database(url: &str, database: &str) -> String {
    let (location, query) = match url.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = location.split_once("://").unwrap_or(("postgres", location));
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

fn uuid_like() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::{report_skip, with_database};

    #[test]
    #[should_panic(expected = "KEYWARDEN_REQUIRE_POSTGRES=1")]
    fn a_required_postgres_case_fails_instead_of_skipping() {
        report_skip("some::postgres_case", true, &mut Vec::new());
    }

    #[test]
    fn an_optional_postgres_case_is_reported_and_counted() {
        let mut out = Vec::new();
        let before = report_skip("some::postgres_case", false, &mut out);
        assert!(report_skip("another::postgres_case", false, &mut out) > before);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("SKIPPED some::postgres_case: TEST_POSTGRES_URL is not set"),
            "{text}"
        );
    }

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=require", "t2"),
            "postgresql://u:p@h/t2?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }
}
