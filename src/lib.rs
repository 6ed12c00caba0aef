//! The composition root: reads settings, builds the storage adapter the
//! database URL names, the application service and the HTTP server, and runs
//! them. The only crate that names concrete adapters.

pub mod cli;
pub mod settings;
mod storage;
mod system;
pub mod telemetry;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::rt::task::JoinHandle;
use actix_web::{App, HttpServer};
use keywarden_application::{
    ApiTokenService, AppError, Bootstrap, ExternalChange, RepositoryError,
};
use keywarden_domain::Credential;
use keywarden_http_adapter::{configure, BodyLimit, MetricsRenderer, RequestLimits};
use keywarden_persistence_adapter::UrlError;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tracing::{info, warn};

pub use settings::Settings;
use storage::Storage;
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
fn metrics_renderer(service: Arc<ApiTokenService>) -> MetricsRenderer {
    let handle = telemetry::metrics();
    Arc::new(move || {
        metrics::gauge!("keywarden_credentials").set(service.credential_count() as f64);
        handle.run_upkeep();
        handle.render()
    })
}

/// A built, bound, not yet running keywarden.
pub struct Application {
    port: u16,
    server: Server,
    service: Arc<ApiTokenService>,
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
        let repository = storage.repository;
        let (service, bootstrap) = ApiTokenService::start(
            repository,
            Arc::new(SystemClock),
            Arc::new(OsRandom),
            settings.service_settings()?,
            settings.init_tokens(),
        )
        .await
        .map_err(StartupError::Service)?;
        let generated_admin = match bootstrap {
            Bootstrap::Generated(credential) => Some(credential),
            Bootstrap::Inserted(count) => {
                info!(count, "inserted the bootstrap tokens from configuration");
                None
            }
            Bootstrap::AlreadyInitialised => None,
        };
        let service = Arc::new(service);

        let usecases: Arc<dyn keywarden_application::ApiTokenUseCases> = service.clone();
        let verification: Arc<dyn keywarden_application::TokenVerification> = service.clone();
        let body_limit = BodyLimit(settings.server.body_limit_bytes);
        let request_limits = RequestLimits {
            max_path_bytes: settings.server.max_path_bytes,
            max_header_bytes: settings.server.max_header_bytes,
        };
        let metrics = metrics_renderer(Arc::clone(&service));
        let mut server = HttpServer::new(move || {
            App::new().configure(configure(
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
            tokens = service.credential_count(),
            "keywarden is listening"
        );
        Ok(Self {
            port,
            server,
            service,
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

    /// Serves until SIGINT/SIGTERM (or the server is stopped), writing last-seen
    /// times periodically and once more after the last request.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(mut self) -> io::Result<()> {
        let (stop_flushing, flushing_stopped) = oneshot::channel();
        let flusher = self.spawn_seen_flusher(flushing_stopped);
        let mut background = Vec::new();
        if let Some(changes) = self.external_changes.take() {
            background.push(self.spawn_change_follower(changes));
        }
        if let Some(interval) = self.resync_interval {
            background.push(self.spawn_resync(interval));
        }
        let outcome = self.server.await;
        for task in background {
            task.abort();
        }
        // Let a flush in progress finish (it puts back what it fails to write),
        // then write whatever is left.
        let _ = stop_flushing.send(());
        let _ = flusher.await;
        match self.service.flush_seen().await {
            Ok(count) => info!(count, "wrote the last-seen times at shutdown"),
            Err(error) => warn!(error = %error, "could not write the last-seen times at shutdown"),
        }
        outcome
    }

    fn spawn_seen_flusher(&self, mut stop: oneshot::Receiver<()>) -> JoinHandle<()> {
        let service = Arc::clone(&self.service);
        let interval = self.seen_flush_interval;
        actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(interval);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        if let Err(error) = service.flush_seen().await {
                            warn!(error = %error, "could not write last-seen times; will retry");
                        }
                    }
                    _ = &mut stop => return,
                }
            }
        })
    }

    /// Applies what the change feed reports, in order.
    fn spawn_change_follower(
        &self,
        mut changes: UnboundedReceiver<ExternalChange>,
    ) -> JoinHandle<()> {
        let service = Arc::clone(&self.service);
        actix_web::rt::spawn(async move {
            while let Some(change) = changes.recv().await {
                let mut change = change;
                // A failed refresh must not leave the view behind: fall back to
                // a full reload, and keep trying until one succeeds.
                while let Err(error) = service.apply_external(change).await {
                    warn!(error = %error, "could not apply another instance's change; reloading");
                    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                    change = ExternalChange::Unknown;
                }
            }
        })
    }

    /// A periodic full reload, in case a notification was lost without the
    /// connection dropping.
    fn spawn_resync(&self, interval: Duration) -> JoinHandle<()> {
        let service = Arc::clone(&self.service);
        actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = service.refresh_view().await {
                    warn!(error = %error, "periodic credential reload failed; will retry");
                }
            }
        })
    }
}
