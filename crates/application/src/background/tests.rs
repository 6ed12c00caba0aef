//! The background loops over a mocked credential authority: each stops when
//! told, and the last-seen flusher writes once more as it stops.

use std::sync::Arc;
use std::time::Duration;

use keywarden_domain::Selector;
use mockall::predicate::eq;
use mockall::Sequence;
use tokio::sync::mpsc::unbounded_channel;

use super::*;
use crate::{AppError, MockCredentialAuthority};

/// Long enough that no tick comes during a test.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn stopping_the_flusher_writes_the_last_seen_times_once_more() {
    let mut credentials = MockCredentialAuthority::new();
    credentials.expect_flush_seen().times(1).returning(|| Ok(3));
    let (stopper, stop) = stop_signal();
    stopper.stop();
    Box::new(SeenFlusher::new(Arc::new(credentials), NEVER))
        .run(stop)
        .await;
}

#[tokio::test]
async fn the_flusher_writes_every_interval_and_survives_failures() {
    let (flushed, mut flushes) = unbounded_channel();
    let mut credentials = MockCredentialAuthority::new();
    let mut calls = 0;
    credentials.expect_flush_seen().returning(move || {
        calls += 1;
        let _ = flushed.send(calls);
        if calls == 1 {
            Err(AppError::Unavailable("down".into()))
        } else {
            Ok(1)
        }
    });
    let (stopper, stop) = stop_signal();
    let task = tokio::spawn(
        Box::new(SeenFlusher::new(
            Arc::new(credentials),
            Duration::from_millis(5),
        ))
        .run(stop),
    );
    for expected in 1..=2 {
        assert_eq!(flushes.recv().await, Some(expected));
    }
    stopper.stop();
    task.await.unwrap();
}

#[tokio::test]
async fn the_follower_applies_changes_in_order_and_reloads_after_a_failure() {
    let a = Selector::from_bytes([1; 16]);
    let b = Selector::from_bytes([2; 16]);
    let (applied, done) = tokio::sync::oneshot::channel();
    let mut applied = Some(applied);
    let mut sequence = Sequence::new();
    let mut credentials = MockCredentialAuthority::new();
    credentials
        .expect_apply_external()
        .with(eq(ExternalChange::Tokens(vec![a])))
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Err(AppError::Unavailable("down".into())));
    credentials
        .expect_apply_external()
        .with(eq(ExternalChange::Unknown))
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Ok(()));
    credentials
        .expect_apply_external()
        .with(eq(ExternalChange::Tokens(vec![b])))
        .times(1)
        .in_sequence(&mut sequence)
        .returning(move |_| {
            if let Some(applied) = applied.take() {
                let _ = applied.send(());
            }
            Ok(())
        });
    let (changes, feed) = unbounded_channel();
    changes.send(ExternalChange::Tokens(vec![a])).unwrap();
    changes.send(ExternalChange::Tokens(vec![b])).unwrap();
    let (stopper, stop) = stop_signal();
    let task = tokio::spawn(Box::new(ChangeFollower::new(Arc::new(credentials), feed)).run(stop));
    done.await.unwrap();
    // The feed is still open: only the stop ends the task.
    stopper.stop();
    task.await.unwrap();
    drop(changes);
}

#[tokio::test]
async fn the_resync_reloads_nothing_at_start_and_stops_when_told() {
    let mut credentials = MockCredentialAuthority::new();
    credentials.expect_refresh_view().never();
    let (stopper, stop) = stop_signal();
    stopper.stop();
    Box::new(PeriodicResync::new(Arc::new(credentials), NEVER))
        .run(stop)
        .await;
}

#[tokio::test]
async fn a_dropped_stopper_stops_the_task() {
    let credentials = MockCredentialAuthority::new();
    let (_changes, feed) = unbounded_channel::<ExternalChange>();
    let (stopper, stop) = stop_signal();
    drop(stopper);
    Box::new(ChangeFollower::new(Arc::new(credentials), feed))
        .run(stop)
        .await;
}

#[tokio::test]
async fn the_view_loader_retries_until_a_load_succeeds_then_ends() {
    let mut credentials = MockCredentialAuthority::new();
    let mut sequence = Sequence::new();
    credentials
        .expect_refresh_view()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|| Err(AppError::Unavailable("down".into())));
    credentials
        .expect_refresh_view()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|| Ok(()));
    credentials.expect_credential_count().returning(|| 0);
    let (_stopper, stop) = stop_signal();
    // Ends by itself once loaded: no stop is given.
    Box::new(ViewLoader::new(Arc::new(credentials)))
        .run(stop)
        .await;
}
