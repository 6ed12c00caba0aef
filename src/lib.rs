//! The composition root: reads settings, builds the storage adapter the
//! database URL names, the application's use cases and the HTTP server, and
//! runs them with their background tasks. The only crate that names concrete
//! adapters; of the application it sees only the inbound ports.

pub mod cli;
pub mod settings;
mod storage;
mod supervisor;
mod system;
pub mod telemetry;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use keywarden_application::{
    start, AppError, Bootstrap, ChangeFollower, CredentialAuthority, ExternalChange,
    PeriodicResync, RepositoryError, SeenFlusher,
};
use keywarden_domain::Credential;
use keywarden_http_adapter::{configure, BodyLimit, MetricsRenderer, RequestLimits};
use keywarden_persistence_adapter::UrlError;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::info;

pub use settings::Settings;
use storage::Storage;
use supervisor::Supervisor;
pub use system::{OsRandom, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("invalid DATABASE_URL")]
    DatabaseUrl(#[from] UrlError),
    #[error("cannot start the change feed")]
    ChangeFeed(#[source] io::Error),
    #[error("cannot open the database")]
    Database(#[source] RepositoryError),
    #[error("cannot prepare the service")]
    Service(#[source] AppError),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: io::Error,
    },
}

/// Renders every metric, after bringing the gauges read at scrape time up to date.
fn metrics_renderer(credentials: Arc<dyn CredentialAuthority>) -> MetricsRenderer {
    let handle = telemetry::metrics();
    Arc::new(move || {
        metrics::gauge!("keywarden_credentials").set(credentials.credential_count() as f64);
        handle.run_upkeep();
        handle.render()
    })
}

/// A built, bound, not yet running keywarden.
pub struct Application {
    port: u16,
    server: Server,
    credentials: Arc<dyn CredentialAuthority>,
    generated_admin: Option<Credential>,
    seen_flush_interval: Duration,
    /// Changes other processes make to the same database.
    external_changes: Option<UnboundedReceiver<ExternalChange>>,
    /// Full reloads besides the change feed, where the feed can lose changes.
    resync_interval: Option<Duration>,
}

impl Application {
    /// Opens and migrates the database, bootstraps tokens, loads the credential
    /// view and binds the listener (port 0 picks a free port).
    ///
    /// # Errors
    /// Any step above; the message says which.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Bind first: a generated admin credential must never be committed by
        // a start that then fails, because it would never be shown.
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let storage = Storage::open(&settings).await?;
        let external_changes = Some(storage.follow_changes()?);
        let resync_interval = storage.periodic_resync(&settings);
        let started = start(
            storage.adapters(),
            settings.service_settings()?,
            settings.init_tokens(),
        )
        .await
        .map_err(StartupError::Service)?;
        let generated_admin = match started.bootstrap {
            Bootstrap::Generated(credential) => Some(credential),
            Bootstrap::Inserted(count) => {
                info!(count, "inserted the bootstrap tokens from configuration");
                None
            }
            Bootstrap::AlreadyInitialised => None,
        };
        let usecases = started.usecases;
        let verification = started.verification;
        let credentials = started.credentials;
        let body_limit = BodyLimit(settings.server.body_limit_bytes);
        let request_limits = RequestLimits {
            max_path_bytes: settings.server.max_path_bytes,
            max_header_bytes: settings.server.max_header_bytes,
        };
        let metrics = metrics_renderer(Arc::clone(&credentials));
        let mut server = HttpServer::new(move || {
            App::new()
                .configure(keywarden_console_adapter::configure)
                .configure(configure(
                    Arc::clone(&usecases),
                    Arc::clone(&verification),
                    body_limit,
                    request_limits,
                    Arc::clone(&metrics),
                ))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: format!("port {port}"),
                source,
            })?
            .run();
        system::trim_memory_periodically();
        info!(
            port,
            tokens = credentials.credential_count(),
            "keywarden is listening"
        );
        Ok(Self {
            port,
            server,
            credentials,
            generated_admin,
            seen_flush_interval: Duration::from_millis(
                settings.tokens.seen_flush_interval_ms.max(10),
            ),
            external_changes,
            resync_interval,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin credential created on the first start of an empty database
    /// without bootstrap tokens. The caller must show it: it exists nowhere else.
    pub fn generated_admin_credential(&self) -> Option<&Credential> {
        self.generated_admin.as_ref()
    }

    /// Serves until SIGINT/SIGTERM (or the server is stopped), with the
    /// background tasks running beside it; they stop after the last request,
    /// the last-seen flusher writing once more.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(mut self) -> io::Result<()> {
        let credentials = &self.credentials;
        let mut background = Supervisor::default();
        if let Some(changes) = self.external_changes.take() {
            background.start(
                "change-feed",
                ChangeFollower::new(Arc::clone(credentials), changes),
            );
        }
        if let Some(interval) = self.resync_interval {
            background.start(
                "resync",
                PeriodicResync::new(Arc::clone(credentials), interval),
            );
        }
        // Last, so it stops last: its final flush sees every sighting.
        background.start(
            "last-seen",
            SeenFlusher::new(Arc::clone(credentials), self.seen_flush_interval),
        );
        let outcome = self.server.await;
        background.shutdown().await;
        outcome
    }
}
