//! Test support (feature `test-support`): a fresh PostgreSQL database per test,
//! dropped when the test ends, so tests can run in parallel and share nothing.

use diesel::{Connection, PgConnection, RunQueryDsl};

/// A database created for one test on the server `TEST_POSTGRES_URL` names.
pub struct TestDatabase {
    base_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `None` when `TEST_POSTGRES_URL` is not set: the caller skips the test.
    ///
    /// # Panics
    /// When the server named by `TEST_POSTGRES_URL` cannot create a database:
    /// a configured but broken server must fail the test, not skip it.
    pub fn create() -> Option<Self> {
        let base_url = std::env::var("TEST_POSTGRES_URL").ok()?;
        let name = format!("keywarden_test_{}", uuid_like());
        let mut admin = PgConnection::establish(&base_url)
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL does not connect: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
        let url = with_database(&base_url, &name);
        Some(Self {
            base_url,
            name,
            url,
        })
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
        let mut admin = PgConnection::establish(&self.base_url).unwrap();
        diesel::sql_query(sql).execute(&mut admin).unwrap();
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
    use super::with_database;

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
