//! Test harnesses, one per need, shared by every test target of the root
//! package: [`app`] starts the real application in-process on a fresh
//! database, [`http`] is a raw HTTP/1.1 client that sends exactly the bytes a
//! test gives. Fresh PostgreSQL databases come from
//! `keywarden_persistence_adapter::testing` (re-exported here), which the
//! persistence adapter's own tests use too.
//!
//! Being a library, its unused helpers are not warned about per test binary,
//! as they would be in a `tests/common` module.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test harness fails the test loudly"
)]

pub mod app;
pub mod http;

pub use keywarden_persistence_adapter::testing::TestDatabase;
