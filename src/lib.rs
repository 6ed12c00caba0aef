//! The composition root: reads settings, builds the storage adapter the
//! database URL names, the application service and the HTTP server, and runs
//! them. The only crate that names concrete adapters.

pub mod settings;
mod system;
pub mod telemetry;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use keywarden_application::{
    ApiTokenRepository, ApiTokenService, AppError, Bootstrap, RepositoryError,
};
use keywarden_domain::Credential;
use keywarden_http_adapter::{configure, BodyLimit};
use keywarden_persistence_adapter::{DatabaseUrl, SqliteRepository, UrlError};
use tracing::{info, warn};

pub use settings::Settings;
pub use system::{OsRandom, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("invalid DATABASE_URL: {0}")]
    DatabaseUrl(#[from] UrlError),
    #[error("PostgreSQL is not supported by this build yet; use a sqlite:// URL")]
    PostgresUnsupported,
    #[error("cannot open the database")]
    Database(#[source] RepositoryError),
    #[error("cannot prepare the service: {0}")]
    Service(#[source] AppError),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: io::Error,
    },
}

/// A built, bound, not yet running keywarden.
pub struct Application {
    port: u16,
    server: Server,
    service: Arc<ApiTokenService>,
    generated_admin: Option<Credential>,
    seen_flush_interval: Duration,
}

impl Application {
    /// Opens and migrates the database, bootstraps tokens, loads the credential
    /// view and binds the listener (port 0 picks a free port).
    ///
    /// # Errors
    /// Any step above; the message says which.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let repository: Arc<dyn ApiTokenRepository> =
            match DatabaseUrl::parse(&settings.database.url)? {
                DatabaseUrl::Sqlite(path) => Arc::new(
                    SqliteRepository::open(path, settings.sqlite_options())
                        .await
                        .map_err(StartupError::Database)?,
                ),
                DatabaseUrl::Postgres(_) => return Err(StartupError::PostgresUnsupported),
            };
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

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let usecases: Arc<dyn keywarden_application::ApiTokenUseCases> = service.clone();
        let body_limit = BodyLimit(settings.server.body_limit_bytes);
        let mut server = HttpServer::new(move || {
            App::new().configure(configure(Arc::clone(&usecases), body_limit))
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
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let service = Arc::clone(&self.service);
        let interval = self.seen_flush_interval;
        let flusher = actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(interval);
            loop {
                ticks.tick().await;
                if let Err(error) = service.flush_seen().await {
                    warn!(error = %error, "could not write last-seen times; will retry");
                }
            }
        });
        let outcome = self.server.await;
        flusher.abort();
        match self.service.flush_seen().await {
            Ok(count) => info!(count, "wrote the last-seen times at shutdown"),
            Err(error) => warn!(error = %error, "could not write the last-seen times at shutdown"),
        }
        outcome
    }
}
