//! SQLite under lock contention: a write lock held by another process beyond
//! the busy timeout is a temporary unavailability, never an internal error,
//! and the write engine recovers once the lock is gone.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use keywarden_application::{error_chain, ApiTokenRepository, RepositoryError};
use keywarden_domain::{Environment, EnvironmentName};
use keywarden_persistence_adapter::{SqliteOptions, SqliteRepository};

/// A write through the repository: declaring the catalog.
async fn declare(repository: &SqliteRepository) -> Result<(), RepositoryError> {
    let development = Environment {
        name: EnvironmentName::parse("development").unwrap(),
        kind: "development".into(),
        sort_order: 1,
        enabled: true,
    };
    repository
        .sync_catalog(Vec::new(), vec![development], false)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_answers_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(300),
        ..SqliteOptions::default()
    };
    let repository = SqliteRepository::open(path.clone(), options).await.unwrap();
    // The writer's connection is open before the lock is taken, so what is
    // refused below is the batch's BEGIN IMMEDIATE.
    declare(&repository).await.unwrap();

    let mut other = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    other.batch_execute("BEGIN IMMEDIATE;").unwrap();
    // The lock is held until this write has given up waiting for it.
    let error = declare(&repository)
        .await
        .expect_err("the write lock is held elsewhere");
    let cause = error_chain(&error);
    assert!(
        matches!(error, RepositoryError::Unavailable(_)),
        "busy must be Unavailable (503), got {cause}"
    );
    assert!(
        cause.contains("database is locked"),
        "the cause is kept: {cause}"
    );

    other.batch_execute("ROLLBACK;").unwrap();
    declare(&repository).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_locked_out_past_the_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    let mut other = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    other
        .batch_execute("PRAGMA journal_mode = WAL; BEGIN IMMEDIATE;")
        .unwrap();
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let error = match SqliteRepository::open(path.clone(), options.clone()).await {
        Ok(_) => panic!("the migrations need the lock held elsewhere"),
        Err(error) => error,
    };
    let cause = error_chain(&error);
    assert!(
        matches!(error, RepositoryError::Unavailable(_)),
        "busy must be Unavailable, got {cause}"
    );

    other.batch_execute("ROLLBACK;").unwrap();
    let repository = SqliteRepository::open(path, options).await.unwrap();
    declare(&repository).await.unwrap();
}
