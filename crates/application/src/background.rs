//! Background work of a serving process, as tasks that run until told to
//! stop: the first load of the credential view, writing last-seen times,
//! following other instances' changes, and the periodic full reload. What each loop does lives here; spawning them and
//! stopping them in order is the composition root's job (its supervisor), so
//! a new loop is one more [`BackgroundTask`] and one line there.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::{interval_at, Instant};
use tracing::{info, warn};

use crate::usecases::{CredentialAuthority, ExternalChange};

/// How long the change follower waits before retrying a failed reload.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Tells one task to stop.
#[derive(Debug)]
pub struct Stopper(watch::Sender<bool>);

/// What a task watches to know it must stop.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

/// A new, not yet given, stop signal.
pub fn stop_signal() -> (Stopper, Stop) {
    let (sender, receiver) = watch::channel(false);
    (Stopper(sender), Stop(receiver))
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Completes once the stop is given (at once if it was), or the
    /// [`Stopper`] is gone.
    pub async fn requested(&mut self) {
        // An error means the stopper was dropped: no one can stop the task
        // any more, which is a stop too.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// A loop of a serving process.
#[async_trait]
pub trait BackgroundTask: Send {
    /// Works until `stop` is given, then finishes what must not be lost and
    /// returns.
    async fn run(self: Box<Self>, stop: Stop);
}

/// Writes the last-seen times authentication batches, every `interval` and
/// once more when stopped (after the last request was served).
pub struct SeenFlusher {
    credentials: Arc<dyn CredentialAuthority>,
    interval: Duration,
}

impl SeenFlusher {
    pub fn new(credentials: Arc<dyn CredentialAuthority>, interval: Duration) -> Self {
        Self {
            credentials,
            interval,
        }
    }
}

#[async_trait]
impl BackgroundTask for SeenFlusher {
    async fn run(self: Box<Self>, mut stop: Stop) {
        // The first write is one interval away: nothing is batched at start.
        let mut ticks = interval_at(Instant::now() + self.interval, self.interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = self.credentials.flush_seen().await {
                        warn!(error = %error, "could not write last-seen times; will retry");
                    }
                }
                () = stop.requested() => break,
            }
        }
        match self.credentials.flush_seen().await {
            Ok(count) => info!(count, "wrote the last-seen times at shutdown"),
            Err(error) => warn!(error = %error, "could not write the last-seen times at shutdown"),
        }
    }
}

/// Applies what the change feed reports, in order, until stopped or the feed
/// ends.
pub struct ChangeFollower {
    credentials: Arc<dyn CredentialAuthority>,
    changes: UnboundedReceiver<ExternalChange>,
}

impl ChangeFollower {
    pub fn new(
        credentials: Arc<dyn CredentialAuthority>,
        changes: UnboundedReceiver<ExternalChange>,
    ) -> Self {
        Self {
            credentials,
            changes,
        }
    }
}

#[async_trait]
impl BackgroundTask for ChangeFollower {
    async fn run(mut self: Box<Self>, mut stop: Stop) {
        loop {
            let mut change = tokio::select! {
                change = self.changes.recv() => match change {
                    Some(change) => change,
                    None => return,
                },
                () = stop.requested() => return,
            };
            // A failed refresh must not leave the view behind: fall back to a
            // full reload, and keep trying until one succeeds.
            while let Err(error) = self.credentials.apply_external(change).await {
                warn!(error = %error, "could not apply another instance's change; reloading");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                    () = stop.requested() => return,
                }
                change = ExternalChange::Unknown;
            }
        }
    }
}

/// The first full load of the credential view, while the process serves:
/// retried until it succeeds (or the process stops), then done.
pub struct ViewLoader {
    credentials: Arc<dyn CredentialAuthority>,
}

impl ViewLoader {
    pub fn new(credentials: Arc<dyn CredentialAuthority>) -> Self {
        Self { credentials }
    }
}

#[async_trait]
impl BackgroundTask for ViewLoader {
    async fn run(self: Box<Self>, mut stop: Stop) {
        let started = Instant::now();
        loop {
            let attempt = tokio::select! {
                attempt = self.credentials.refresh_view() => attempt,
                () = stop.requested() => return,
            };
            match attempt {
                Ok(()) => {
                    info!(
                        tokens = self.credentials.credential_count(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "the credential view is loaded"
                    );
                    return;
                }
                Err(error) => {
                    warn!(error = %error, "could not load the credential view; will retry")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_AFTER) => {}
                () = stop.requested() => return,
            }
        }
    }
}

/// A full reload every `interval`, where the change feed can lose a
/// notification without noticing.
pub struct PeriodicResync {
    credentials: Arc<dyn CredentialAuthority>,
    interval: Duration,
}

impl PeriodicResync {
    pub fn new(credentials: Arc<dyn CredentialAuthority>, interval: Duration) -> Self {
        Self {
            credentials,
            interval,
        }
    }
}

#[async_trait]
impl BackgroundTask for PeriodicResync {
    async fn run(self: Box<Self>, mut stop: Stop) {
        // The view loader makes the first load.
        let mut ticks = interval_at(Instant::now() + self.interval, self.interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = self.credentials.refresh_view().await {
                        warn!(error = %error, "periodic credential reload failed; will retry");
                    }
                }
                () = stop.requested() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
