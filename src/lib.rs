//! The composition root: reads settings, builds the storage adapter the
//! database URL names, the application's use cases and the HTTP server, and
//! runs them with their background tasks. The only crate that names concrete
//! adapters; of the application it sees only the inbound ports.

pub mod cli;
mod config_report;
pub mod settings;
mod storage;
mod supervisor;
mod system;
pub mod telemetry;

use std::io::{self, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use keywarden_application::{
    check_init_token_strength, register_webhooks, start, AppError, Bootstrap, ChangeFollower,
    CredentialAuthority, ExternalChange, NamedTask, PeriodicResync, RepositoryError, SeenFlusher,
    ViewLoader, WebhookSender,
};
use keywarden_domain::Credential;
use keywarden_http_adapter::{
    configure, BodyLimit, BodyReadTimeout, HttpWebhookSender, MetricsRenderer, RequestLimits,
};
use keywarden_persistence_adapter::{private_files, ChangeNotifier, UrlError};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

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
    #[error(
        "there is no database at {0} and this command does not create one. \
         Run it where the database is, or name it with DATABASE_URL=sqlite://<path> \
         or --config <file>; to start a new, empty database here, add --create-database"
    )]
    NoDatabase(std::path::PathBuf),
    #[error(
        "the database {} is writable by every user of this host (mode {mode:o}), so anyone \
         could plant an admin token; check its tokens, then run chmod 600 on it",
        path.display()
    )]
    UnsafeDatabase { path: std::path::PathBuf, mode: u32 },
    #[error("cannot prepare the service")]
    Service(#[source] AppError),
    #[error("cannot set up the webhook client")]
    WebhookClient(#[source] Box<dyn std::error::Error + Send + Sync>),
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

/// How many tokens storage holds, and whether an admin token can use the
/// Admin API: an instance nobody can administer over HTTP must say how to
/// recover, in the words the operator will type.
/// Refuses guessable `INIT_*` credentials before anything is opened, and
/// warns, at every start, about the ones that start anyway.
///
/// # Errors
/// `Service` naming the variable of a guessable credential.
pub fn check_bootstrap_secrets(settings: &Settings) -> Result<(), StartupError> {
    let warnings = check_init_token_strength(
        &settings.init_tokens(),
        settings.bootstrap.allow_weak_tokens,
    )
    .map_err(StartupError::Service)?;
    for warning in warnings {
        warn!("{warning}");
    }
    Ok(())
}

/// The documented counters, at zero before anything counts, so a dashboard
/// or an alert on `rate(...)` sees them from the first scrape.
fn metrics_at_zero() {
    for outcome in ["ok", "unknown", "expired", "wrong_type", "missing"] {
        metrics::counter!("keywarden_authentications_total", "outcome" => outcome).increment(0);
    }
    for result in ["ok", "error"] {
        metrics::counter!("keywarden_seen_flushes_total", "result" => result).increment(0);
    }
    for name in [
        "keywarden_credential_reloads_total",
        "keywarden_external_changes_total",
        "keywarden_db_pool_timeouts_total",
        "keywarden_seen_tokens_written_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// A built, bound, not yet running keywarden.
pub struct Application {
    port: u16,
    server: Server,
    credentials: Arc<dyn CredentialAuthority>,
    generated_admin: Option<Credential>,
    /// Where the generated admin credential goes when no terminal shows it.
    credential_file: std::path::PathBuf,
    seen_flush_interval: Duration,
    /// Changes other processes make to the same database.
    external_changes: Option<UnboundedReceiver<ExternalChange>>,
    /// Full reloads besides the change feed, where the feed can lose changes.
    resync_interval: Option<Duration>,
    /// Announces this process's writes to the other instances, where there are any.
    change_notifier: Option<ChangeNotifier>,
    /// Webhook dispatchers, the expiry watch and the unused-token reaper.
    notification_tasks: Vec<NamedTask>,
}

impl Application {
    /// Opens and migrates the database, bootstraps tokens and binds the
    /// listener (port 0 picks a free port). The credential view loads once
    /// running, without holding up the first answers.
    ///
    /// # Errors
    /// Any step above; the message says which.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        check_bootstrap_secrets(&settings)?;
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
        let storage = Storage::open(&settings, storage::Creation::Allowed).await?;
        let external_changes = Some(storage.follow_changes()?);
        let resync_interval = storage.periodic_resync(&settings);
        let notifications = settings.notification_settings()?;
        // Before bootstrap, so that its events reach the endpoints too.
        register_webhooks(
            storage.notifications().as_ref(),
            &SystemClock,
            &notifications,
        )
        .await
        .map_err(StartupError::Service)?;
        let sender: Option<Arc<dyn WebhookSender>> = if notifications.endpoints.is_empty() {
            None
        } else {
            let client = HttpWebhookSender::new()
                .map_err(|error| StartupError::WebhookClient(Box::new(error)))?;
            Some(Arc::new(client))
        };
        let started = start(
            storage.adapters(),
            settings.service_settings()?,
            settings.init_tokens(),
        )
        .await
        .map_err(StartupError::Service)?;
        let notification_tasks =
            started.notification_tasks(storage.notifications(), sender, &notifications);
        // Taken after bootstrap, whose writes thus announce themselves at once.
        let change_notifier = storage.change_notifier(&settings);
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
        let serving = Arc::clone(&usecases);
        let credentials = started.credentials;
        let body_limit = BodyLimit(settings.server.body_limit_bytes);
        let request_limits = RequestLimits {
            max_path_bytes: settings.server.max_path_bytes,
            max_header_bytes: settings.server.max_header_bytes,
        };
        let metrics = metrics_renderer(Arc::clone(&credentials));
        metrics_at_zero();
        let request_timeout = Duration::from_millis(settings.server.client_request_timeout_ms);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(BodyReadTimeout(request_timeout))
                .configure(keywarden_console_adapter::configure)
                .configure(configure(
                    Arc::clone(&serving),
                    Arc::clone(&verification),
                    body_limit,
                    request_limits,
                    Arc::clone(&metrics),
                ))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        // A client that sends its headers, then its body slowly or never,
        // must not hold a connection and a worker's attention for good.
        .client_request_timeout(request_timeout);
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
        let database = storage::describe_database(&settings);
        // How many tokens there are, and whether an admin token exists, is
        // logged once the view has loaded: counting here would read every
        // token before the first request is answered.
        info!(
            address = %format!("{}:{port}", settings.server.host),
            port,
            database,
            "keywarden is listening"
        );
        Ok(Self {
            port,
            server,
            credentials,
            generated_admin,
            credential_file: settings.bootstrap.credential_file.clone(),
            seen_flush_interval: Duration::from_millis(
                settings.tokens.seen_flush_interval_ms.max(10),
            ),
            external_changes,
            resync_interval,
            change_notifier,
            notification_tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credential authority, e.g. to wait until its view is loaded.
    pub fn credentials(&self) -> Arc<dyn CredentialAuthority> {
        Arc::clone(&self.credentials)
    }

    /// The admin credential created on the first start of an empty database
    /// without bootstrap tokens. The caller must show it: it exists nowhere else.
    pub fn generated_admin_credential(&self) -> Option<&Credential> {
        self.generated_admin.as_ref()
    }

    /// Shows the generated admin credential, if any, once (contract §6): on
    /// a terminal directly; otherwise standard output is a journal or a
    /// container log that keeps it for good, so it goes to the private
    /// `bootstrap.credential_file` and only that file's path is logged.
    ///
    /// # Errors
    /// When the file cannot be written; the credential is then lost and a
    /// new admin token must be made with `keywarden tokens create`.
    pub fn hand_over_admin_credential(&self, terminal: bool) -> io::Result<()> {
        let Some(credential) = &self.generated_admin else {
            return Ok(());
        };
        if terminal {
            println!(
                "keywarden created the first admin API token. It is shown ONLY THIS ONCE and is not stored; save it now:\n{}",
                credential.expose_secret()
            );
            return Ok(());
        }
        let path = &self.credential_file;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = private_files::create_file(path)?;
        writeln!(file, "{}", credential.expose_secret())?;
        file.sync_all()?;
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        warn!(
            path = %path.display(),
            "keywarden created the first admin API token and wrote its credential to this \
             file, readable only by this user; store it safely and delete the file"
        );
        Ok(())
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
        // Serving starts with the view empty; until this fills it, what it
        // lacks is looked up, and /ready answers 503.
        background.start("view-loader", ViewLoader::new(Arc::clone(credentials)));
        if let Some(changes) = self.external_changes.take() {
            background.start(
                "change-feed",
                ChangeFollower::new(Arc::clone(credentials), changes),
            );
        }
        if let Some(notifier) = self.change_notifier.take() {
            background.start("change-notifier", notifier);
        }
        if let Some(interval) = self.resync_interval {
            background.start(
                "resync",
                PeriodicResync::new(Arc::clone(credentials), interval),
            );
        }
        for (name, task) in std::mem::take(&mut self.notification_tasks) {
            background.start_boxed(name, task);
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
