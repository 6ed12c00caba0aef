//! Logging through `tracing`, to standard error, so standard output carries
//! only what the operator must read (the first admin credential).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
