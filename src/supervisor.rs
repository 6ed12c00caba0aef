//! The one owner of a serving process's background tasks: it spawns each on
//! the server's runtime under a name, and at shutdown stops them one by one,
//! in the order they were started, waiting for each to finish its last step
//! (the final last-seen flush among them). What the tasks do is the
//! application's; when and where they run is decided here.

use actix_web::rt::task::JoinHandle;
use keywarden_application::{stop_signal, BackgroundTask, Stopper};
use tracing::{debug, warn};

struct Running {
    name: &'static str,
    stopper: Stopper,
    handle: JoinHandle<()>,
}

#[derive(Default)]
pub(crate) struct Supervisor {
    tasks: Vec<Running>,
}

impl Supervisor {
    /// Spawns `task` now; it runs until [`Supervisor::shutdown`].
    pub(crate) fn start(&mut self, name: &'static str, task: impl BackgroundTask + 'static) {
        self.start_boxed(name, Box::new(task));
    }

    /// As [`Supervisor::start`], for a task already boxed.
    pub(crate) fn start_boxed(&mut self, name: &'static str, task: Box<dyn BackgroundTask>) {
        let (stopper, stop) = stop_signal();
        let handle = actix_web::rt::spawn(task.run(stop));
        debug!(task = name, "background task started");
        self.tasks.push(Running {
            name,
            stopper,
            handle,
        });
    }

    /// Stops every task in the order they were started, each finishing
    /// before the next is told.
    pub(crate) async fn shutdown(self) {
        for task in self.tasks {
            task.stopper.stop();
            match task.handle.await {
                Ok(()) => debug!(task = task.name, "background task stopped"),
                Err(error) => warn!(task = task.name, error = %error, "background task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use keywarden_application::Stop;

    use super::*;

    /// Records its name when told to stop, after yielding `yields` times: a
    /// shutdown that did not wait for it would miss the record, and one that
    /// stopped every task at once would see those yielding least first.
    struct Recorder {
        name: &'static str,
        yields: usize,
        stopped: Arc<Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl BackgroundTask for Recorder {
        async fn run(self: Box<Self>, mut stop: Stop) {
            stop.requested().await;
            for _ in 0..self.yields {
                actix_web::rt::task::yield_now().await;
            }
            self.stopped.lock().unwrap().push(self.name);
        }
    }

    #[actix_web::test]
    async fn shutdown_stops_every_task_in_order_and_waits_for_each() {
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let mut supervisor = Supervisor::default();
        for (name, yields) in [("first", 3), ("second", 2), ("third", 1)] {
            supervisor.start(
                name,
                Recorder {
                    name,
                    yields,
                    stopped: Arc::clone(&stopped),
                },
            );
        }
        actix_web::rt::task::yield_now().await;
        assert!(
            stopped.lock().unwrap().is_empty(),
            "nothing stops by itself"
        );
        supervisor.shutdown().await;
        assert_eq!(*stopped.lock().unwrap(), ["first", "second", "third"]);
    }
}
