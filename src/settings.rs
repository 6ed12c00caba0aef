//! Settings: compiled-in defaults (`config/default.toml`), an optional overlay
//! file, the environment variables Unleash operators already use, and
//! `KEYWARDEN__SECTION__KEY` variables, in that order of precedence. The
//! environment is passed in, never read from globals, so tests can vary it.
//! Every section refuses keys it does not know, so a misspelt key or variable
//! is an error naming it rather than a silently ignored setting.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment as EnvSource, File, FileFormat};
use keywarden_application::{InitToken, ServiceSettings};
use keywarden_domain::{Credential, Environment, EnvironmentName, Project, ProjectId, TokenType};
use keywarden_persistence_adapter::{PostgresOptions, SqliteOptions, WriteEngineTuning};
use serde::Deserialize;

pub(crate) const DEFAULTS: &str = include_str!("../config/default.toml");

/// Unleash's variable names and the keys they set.
pub(crate) const UNLEASH_NAMES: [(&str, &str); 4] = [
    ("DATABASE_URL", "KEYWARDEN__DATABASE__URL"),
    ("HTTP_HOST", "KEYWARDEN__SERVER__HOST"),
    ("HTTP_PORT", "KEYWARDEN__SERVER__PORT"),
    ("UNLEASH_API_TOKENS_LIMIT", "KEYWARDEN__TOKENS__LIMIT"),
];

/// Unleash's bootstrap variables, the type of token each makes, and the
/// variable of ours they stand for.
pub(crate) const INIT_VARIABLES: [(&str, TokenType, &str); 4] = [
    (
        "INIT_ADMIN_API_TOKENS",
        TokenType::Admin,
        "KEYWARDEN__BOOTSTRAP__ADMIN_TOKENS",
    ),
    (
        "INIT_BACKEND_API_TOKENS",
        TokenType::Backend,
        "KEYWARDEN__BOOTSTRAP__BACKEND_TOKENS",
    ),
    (
        "INIT_CLIENT_API_TOKENS",
        TokenType::Client,
        "KEYWARDEN__BOOTSTRAP__CLIENT_TOKENS",
    ),
    (
        "INIT_FRONTEND_API_TOKENS",
        TokenType::Frontend,
        "KEYWARDEN__BOOTSTRAP__FRONTEND_TOKENS",
    ),
];

/// Keys holding a list of strings: their variables are comma-separated.
const STRING_LIST_KEYS: [&str; 5] = [
    "notifications.expiry_warnings",
    "bootstrap.admin_tokens",
    "bootstrap.backend_tokens",
    "bootstrap.client_tokens",
    "bootstrap.frontend_tokens",
];

/// Keys holding a list of tables: their variables are TOML inline arrays,
/// e.g. `KEYWARDEN__PROJECTS='[{ id = "web", name = "Web" }]'`.
const TABLE_LIST_KEYS: [&str; 3] = ["projects", "environments", "webhooks"];

const ENV_PREFIX: &str = "KEYWARDEN__";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    // The cause is the source, not part of the message: error chains print
    // each message once.
    #[error("invalid configuration")]
    Config(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub bootstrap: BootstrapSettings,
    pub log: LogSettings,
    pub projects: Vec<ProjectSettings>,
    pub environments: Vec<EnvironmentSettings>,
    pub notifications: NotificationSettingsToml,
    /// Endpoints that receive lifecycle events (`[[webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsToml {
    /// A delivery still failing this long after its event is given up.
    pub give_up_after: String,
    /// How long before expiry `api-token-expiring` is recorded.
    pub expiry_warnings: Vec<String>,
    /// How often each instance looks for expiry warnings that became due.
    pub expiry_check_interval_ms: u64,
}

/// One `[[webhooks]]` table; `Debug` never shows the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: SecretString,
    /// Event types; absent: all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

impl WebhookSettings {
    fn endpoint(&self, index: usize) -> Result<keywarden_application::Endpoint, SettingsError> {
        let invalid = |what: String| SettingsError::Invalid(format!("webhooks[{index}].{what}"));
        let host = ["http://", "https://"]
            .iter()
            .find_map(|scheme| self.url.strip_prefix(scheme))
            .ok_or_else(|| {
                invalid(format!(
                    "url must start with http:// or https://; got {:?}",
                    self.url
                ))
            })?;
        if host.is_empty() || host.starts_with('/') || self.url.chars().any(char::is_whitespace) {
            return Err(invalid(format!("url {:?} names no host", self.url)));
        }
        use base64::Engine;
        let key = self
            .secret
            .0
            .strip_prefix("whsec_")
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .filter(|key| key.len() >= 24)
            .ok_or_else(|| {
                invalid(
                    "secret must be whsec_ followed by the base64 of at least 24 random bytes \
                     (e.g. echo whsec_$(head -c 32 /dev/urandom | base64))"
                        .to_string(),
                )
            })?;
        let events = self
            .events
            .as_ref()
            .map(|names| {
                names
                    .iter()
                    .map(|name| {
                        keywarden_domain::EventType::parse(name).ok_or_else(|| {
                            let known: Vec<_> = keywarden_domain::EventType::ALL
                                .iter()
                                .map(|kind| kind.as_str())
                                .collect();
                            invalid(format!(
                                "events: unknown type {name:?}; known: {}",
                                known.join(", ")
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(keywarden_application::Endpoint {
            url: self.url.clone(),
            key: keywarden_application::SigningKey::new(key),
            events,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub max_path_bytes: usize,
    pub max_header_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub client_request_timeout_ms: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub busy_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub resync_interval_secs: u64,
    pub notify_interval_ms: u64,
    pub write_batch_max: usize,
    pub checkpoint_interval_ms: u64,
    pub background_checkpoint_interval_ms: u64,
    pub checkpoint_fresh_ms: u64,
    pub checkpoint_overdue_ms: u64,
    pub own_write_ranges_max: usize,
}

/// A PostgreSQL URL may carry a password.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("resync_interval_secs", &self.resync_interval_secs)
            .field("notify_interval_ms", &self.notify_interval_ms)
            .field("write_batch_max", &self.write_batch_max)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field(
                "background_checkpoint_interval_ms",
                &self.background_checkpoint_interval_ms,
            )
            .field("checkpoint_fresh_ms", &self.checkpoint_fresh_ms)
            .field("checkpoint_overdue_ms", &self.checkpoint_overdue_ms)
            .field("own_write_ranges_max", &self.own_write_ranges_max)
            .finish()
    }
}

impl DatabaseSettings {
    /// Values the database would reject or the write engine cannot run with.
    fn validate(&self) -> Result<(), SettingsError> {
        let positive = [
            ("write_batch_max", self.write_batch_max as u64),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms),
            (
                "background_checkpoint_interval_ms",
                self.background_checkpoint_interval_ms,
            ),
            ("own_write_ranges_max", self.own_write_ranges_max as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(SettingsError::Invalid(format!(
                "database.{key} must be at least 1"
            )));
        }
        // SQLite's busy_timeout and PostgreSQL's statement_timeout are ints.
        let milliseconds = [
            ("busy_timeout_ms", self.busy_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
        ];
        if let Some((key, _)) = milliseconds
            .iter()
            .find(|(_, value)| i32::try_from(*value).is_err())
        {
            return Err(SettingsError::Invalid(format!(
                "database.{key} must be at most {}",
                i32::MAX
            )));
        }
        Ok(())
    }
}

/// `scheme://user:<redacted>@host/db?password=<redacted>`: keeps what helps
/// debugging, drops every password (in the user info, which may itself hold
/// `@`, or as a `password`/`sslpassword` query parameter).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = location.split_at(location.find('/').unwrap_or(location.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:<redacted>@{host}")
        }
        None => authority.to_string(),
    };
    let query = query.map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{key}=<redacted>")
                }
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}://{authority}{path}?{query}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub limit: u32,
    pub seen_flush_interval_ms: u64,
    /// Lifetime policy (lifecycle.md §2), durations as `90s 15m 12h 30d 2w`.
    #[serde(default)]
    pub max_lifetime: Option<String>,
    #[serde(default)]
    pub default_lifetime: Option<String>,
    #[serde(default)]
    pub require_expiry: bool,
    /// Tokens unused this long are expired (none: never).
    #[serde(default)]
    pub expire_unused_after: Option<String>,
}

impl TokenSettings {
    /// The lifetime policy the settings describe.
    ///
    /// # Errors
    /// A duration that does not parse, named by its key.
    pub fn lifetime(&self) -> Result<keywarden_domain::LifetimePolicy, SettingsError> {
        let duration = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(|text| {
                    keywarden_domain::parse_duration(text)
                        .map_err(|e| SettingsError::Invalid(format!("tokens.{key}: {e}")))
                })
                .transpose()
        };
        Ok(keywarden_domain::LifetimePolicy {
            max_lifetime: duration("max_lifetime", &self.max_lifetime)?,
            default_lifetime: duration("default_lifetime", &self.default_lifetime)?,
            require_expiry: self.require_expiry,
        })
    }
}

/// A credential from configuration; `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    pub admin_tokens: Vec<SecretString>,
    pub backend_tokens: Vec<SecretString>,
    pub client_tokens: Vec<SecretString>,
    pub frontend_tokens: Vec<SecretString>,
    /// Where the first start writes the generated admin credential when
    /// standard output is not a terminal.
    pub credential_file: PathBuf,
    /// Start even with weak or well-known `INIT_*` credentials (with a warning).
    pub allow_weak_tokens: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSettings {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sort_order: i32,
    pub enabled: bool,
}

impl Settings {
    /// Reads settings from `env` (variable name → value) and, if given or named
    /// by `KEYWARDEN_CONFIG`, an overlay file.
    ///
    /// # Errors
    /// When a source cannot be read, a value has the wrong type, or a key (in a
    /// file or a `KEYWARDEN__` variable) is not one of ours.
    pub fn load(
        overlay: Option<PathBuf>,
        mut env: HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = overlay.or_else(|| env.get("KEYWARDEN_CONFIG").map(PathBuf::from)) {
            builder = builder.add_source(File::from(path).required(true));
        }
        let unleash_names = UNLEASH_NAMES
            .into_iter()
            .chain(INIT_VARIABLES.map(|(unleash, _, ours)| (unleash, ours)));
        for (unleash, ours) in unleash_names {
            if let Some(value) = env.get(unleash).cloned() {
                env.entry(ours.to_string()).or_insert(value);
            }
        }
        // The environment source reads every value as a string; list keys are
        // taken out of it and set as lists.
        let mut lists = Vec::new();
        env.retain(|name, value| match list_key(name) {
            Some(key) => {
                lists.push((key, name.clone(), std::mem::take(value)));
                false
            }
            None => true,
        });
        builder = builder.add_source(
            EnvSource::with_prefix("KEYWARDEN")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        for (key, name, value) in lists {
            builder = if TABLE_LIST_KEYS.contains(&key) {
                builder.add_source(File::from_str(
                    &format!("{key} = {value}"),
                    FileFormat::Toml,
                ))
            } else {
                let items: Vec<String> = split_list(&value).map(str::to_string).collect();
                builder
                    .set_override(key, items)
                    .map_err(|e| SettingsError::Invalid(format!("{name}: {e}")))?
            };
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.database.validate()?;
        Ok(settings)
    }

    pub fn sqlite_options(&self) -> SqliteOptions {
        SqliteOptions {
            max_connections: self.database.max_connections.max(1),
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            busy_timeout: Duration::from_millis(self.database.busy_timeout_ms),
            engine: WriteEngineTuning {
                max_batch: self.database.write_batch_max,
                checkpoint_interval: Duration::from_millis(self.database.checkpoint_interval_ms),
                background_checkpoint_interval: Duration::from_millis(
                    self.database.background_checkpoint_interval_ms,
                ),
                checkpoint_fresh: Duration::from_millis(self.database.checkpoint_fresh_ms),
                checkpoint_overdue: Duration::from_millis(self.database.checkpoint_overdue_ms),
                max_own_write_ranges: self.database.own_write_ranges_max,
            },
        }
    }

    pub fn postgres_options(&self) -> PostgresOptions {
        PostgresOptions {
            max_connections: self.database.max_connections.max(1),
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
        }
    }

    /// The application's view of these settings, names validated.
    ///
    /// # Errors
    /// `Invalid` for a project id or environment name that is not URL-friendly.
    pub fn service_settings(&self) -> Result<ServiceSettings, SettingsError> {
        let invalid = |e: keywarden_domain::DomainError| SettingsError::Invalid(e.to_string());
        let projects = self
            .projects
            .iter()
            .map(|p| {
                Ok(Project {
                    id: ProjectId::parse(&p.id).map_err(invalid)?,
                    name: p.name.clone(),
                    description: p.description.clone(),
                })
            })
            .collect::<Result<_, SettingsError>>()?;
        let environments = self
            .environments
            .iter()
            .map(|e| {
                Ok(Environment {
                    name: EnvironmentName::parse(&e.name).map_err(invalid)?,
                    kind: e.kind.clone(),
                    sort_order: e.sort_order,
                    enabled: e.enabled,
                })
            })
            .collect::<Result<_, SettingsError>>()?;
        Ok(ServiceSettings {
            token_limit: self.tokens.limit,
            projects,
            environments,
            lifetime: self.tokens.lifetime()?,
        })
    }

    /// What lifecycle notifications do (lifecycle §4), checked.
    ///
    /// # Errors
    /// A key that does not parse, named.
    pub fn notification_settings(
        &self,
    ) -> Result<keywarden_application::NotificationSettings, SettingsError> {
        let duration = |key: &str, text: &str| {
            keywarden_domain::parse_duration(text)
                .map_err(|e| SettingsError::Invalid(format!("{key}: {e}")))
        };
        let endpoints = self
            .webhooks
            .iter()
            .enumerate()
            .map(|(index, webhook)| webhook.endpoint(index))
            .collect::<Result<Vec<_>, _>>()?;
        let mut urls = std::collections::HashSet::new();
        if let Some(twice) = endpoints.iter().find(|e| !urls.insert(e.url.as_str())) {
            return Err(SettingsError::Invalid(format!(
                "webhooks: {} is configured twice",
                keywarden_application::redact_endpoint(&twice.url)
            )));
        }
        if !(10..=60_000).contains(&self.notifications.expiry_check_interval_ms) {
            return Err(SettingsError::Invalid(
                "notifications.expiry_check_interval_ms must be 10 to 60000: warnings are \
                 recorded within 60 s of becoming due"
                    .into(),
            ));
        }
        Ok(keywarden_application::NotificationSettings {
            endpoints,
            give_up_after: duration(
                "notifications.give_up_after",
                &self.notifications.give_up_after,
            )?,
            expiry_warnings: keywarden_domain::ExpiryWarnings::parse(
                &self.notifications.expiry_warnings,
            )
            .map_err(|e| SettingsError::Invalid(format!("notifications.expiry_warnings: {e}")))?,
            expiry_check_interval: Duration::from_millis(
                self.notifications.expiry_check_interval_ms,
            ),
            expire_unused_after: self
                .tokens
                .expire_unused_after
                .as_deref()
                .map(|text| duration("tokens.expire_unused_after", text))
                .transpose()?,
        })
    }

    /// The operator's bootstrap credentials, typed.
    pub fn init_tokens(&self) -> Vec<InitToken> {
        INIT_VARIABLES
            .iter()
            .flat_map(|(_, token_type, _)| {
                self.bootstrap
                    .list(*token_type)
                    .iter()
                    .map(|secret| InitToken {
                        token_type: *token_type,
                        credential: Credential::new(secret.0.clone()),
                    })
            })
            .collect()
    }
}

impl BootstrapSettings {
    fn list(&self, token_type: TokenType) -> &[SecretString] {
        match token_type {
            TokenType::Admin => &self.admin_tokens,
            TokenType::Backend => &self.backend_tokens,
            TokenType::Client => &self.client_tokens,
            TokenType::Frontend => &self.frontend_tokens,
        }
    }
}

/// The configuration key a `KEYWARDEN__…` variable sets, when it is a list key.
fn list_key(variable: &str) -> Option<&'static str> {
    let prefix = variable.get(..ENV_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(ENV_PREFIX) {
        return None;
    }
    let key = variable[ENV_PREFIX.len()..]
        .replace("__", ".")
        .to_ascii_lowercase();
    STRING_LIST_KEYS
        .into_iter()
        .chain(TABLE_LIST_KEYS)
        .find(|list| *list == key)
}

/// The items of a comma-separated list, trimmed, empty ones dropped.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Settings {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(None, env).unwrap()
    }

    #[test]
    fn defaults_need_nothing() {
        let settings = load(&[]);
        assert_eq!(settings.server.port, 4242);
        assert_eq!(settings.server.host, "0.0.0.0");
        assert_eq!(settings.database.url, "sqlite://data/keywarden.db");
        assert_eq!(settings.tokens.limit, 2000);
        let service = settings.service_settings().unwrap();
        assert_eq!(service.projects.len(), 1);
        assert_eq!(service.environments.len(), 2);
        assert!(settings.init_tokens().is_empty());
    }

    #[test]
    fn unleash_names_work_and_keywarden_names_win() {
        let settings = load(&[
            ("DATABASE_URL", "sqlite:///tmp/x.db"),
            ("HTTP_PORT", "8080"),
            ("HTTP_HOST", "127.0.0.1"),
            ("UNLEASH_API_TOKENS_LIMIT", "5"),
        ]);
        assert_eq!(settings.database.url, "sqlite:///tmp/x.db");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(settings.tokens.limit, 5);
        let settings = load(&[("HTTP_PORT", "8080"), ("KEYWARDEN__SERVER__PORT", "9090")]);
        assert_eq!(settings.server.port, 9090);
        let settings = load(&[("KEYWARDEN__TOKENS__SEEN_FLUSH_INTERVAL_MS", "250")]);
        assert_eq!(settings.tokens.seen_flush_interval_ms, 250);
        let settings = load(&[("KEYWARDEN__LOG__FORMAT", "json")]);
        assert_eq!(settings.log.format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        let env = [("HTTP_PORT".to_string(), "eighty".to_string())].into();
        assert!(Settings::load(None, env).is_err());
    }

    #[test]
    fn the_lifetime_policy_reads_operator_durations() {
        let defaults = load(&[]).service_settings().unwrap().lifetime;
        assert_eq!(defaults, keywarden_domain::LifetimePolicy::default());
        let policy = load(&[
            ("KEYWARDEN__TOKENS__MAX_LIFETIME", "365d"),
            ("KEYWARDEN__TOKENS__DEFAULT_LIFETIME", "2w"),
            ("KEYWARDEN__TOKENS__REQUIRE_EXPIRY", "true"),
        ])
        .service_settings()
        .unwrap()
        .lifetime;
        assert_eq!(policy.max_lifetime, Some(chrono::Duration::days(365)));
        assert_eq!(policy.default_lifetime, Some(chrono::Duration::weeks(2)));
        assert!(policy.require_expiry);
        let error = load(&[("KEYWARDEN__TOKENS__MAX_LIFETIME", "a year")])
            .service_settings()
            .unwrap_err();
        assert!(error.to_string().contains("tokens.max_lifetime"), "{error}");
    }

    #[test]
    fn init_tokens_from_unleash_variables() {
        let settings = load(&[
            ("INIT_ADMIN_API_TOKENS", "*:*.one, *:*.two"),
            ("INIT_CLIENT_API_TOKENS", "default:development.three"),
            ("INIT_FRONTEND_API_TOKENS", ""),
        ]);
        let init = settings.init_tokens();
        let types: Vec<_> = init.iter().map(|t| t.token_type).collect();
        assert_eq!(
            types,
            vec![TokenType::Admin, TokenType::Admin, TokenType::Client]
        );
        assert_eq!(init[1].credential.expose_secret(), "*:*.two");
        assert!(!format!("{settings:?}").contains("*:*.one"));
    }

    #[test]
    fn overlay_files_change_only_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.toml");
        std::fs::write(&path, "[server]\nport = 5000\n[tokens]\nlimit = 3\n").unwrap();
        let env = [("KEYWARDEN_CONFIG".to_string(), path.display().to_string())].into();
        let settings = Settings::load(None, env).unwrap();
        assert_eq!(settings.server.port, 5000);
        assert_eq!(settings.tokens.limit, 3);
        assert_eq!(settings.server.host, "0.0.0.0");
        assert!(Settings::load(Some(dir.path().join("missing.toml")), HashMap::new()).is_err());
    }

    fn load_err(vars: &[(&str, &str)]) -> String {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let error = Settings::load(None, env).expect_err("the configuration is refused");
        keywarden_application::error_chain(&error)
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.toml");
        std::fs::write(&path, "[server]\nprot = 5000\n").unwrap();
        let error = Settings::load(Some(path), HashMap::new()).unwrap_err();
        assert!(error.to_string().contains("invalid configuration"));
        let text = keywarden_application::error_chain(&error);
        assert!(text.contains("`prot`"), "{text}");
        let text = load_err(&[("KEYWARDEN__SERVER__PROT", "5000")]);
        assert!(text.contains("`prot`"), "{text}");
        let text = load_err(&[("KEYWARDEN__SEVRER__PORT", "5000")]);
        assert!(text.contains("`sevrer`"), "{text}");
        let text = load_err(&[(
            "KEYWARDEN__PROJECTS",
            r#"[{ id = "a", name = "A", colour = "red" }]"#,
        )]);
        assert!(text.contains("`colour`"), "{text}");
    }

    #[test]
    fn configuration_errors_say_each_thing_once() {
        let text = load_err(&[("HTTP_PORT", "eighty")]);
        assert_eq!(text.matches("eighty").count(), 1, "{text}");
        assert!(text.starts_with("invalid configuration: "), "{text}");
    }

    #[test]
    fn list_keys_can_be_set_through_variables() {
        let settings = load(&[
            (
                "KEYWARDEN__BOOTSTRAP__ADMIN_TOKENS",
                "*:*.one-0123456789abcdef, *:*.two-0123456789abcdef",
            ),
            (
                "keywarden__bootstrap__frontend_tokens",
                "default:development.three-0123456789",
            ),
            (
                "KEYWARDEN__PROJECTS",
                r#"[{ id = "web", name = "Web" }, { id = "app", name = "App", description = "the app" }]"#,
            ),
            (
                "KEYWARDEN__ENVIRONMENTS",
                r#"[{ name = "staging", type = "test", sort_order = 1, enabled = false }]"#,
            ),
        ]);
        let init: Vec<_> = settings
            .init_tokens()
            .into_iter()
            .map(|t| (t.token_type, t.credential.expose_secret().to_string()))
            .collect();
        assert_eq!(
            init,
            vec![
                (TokenType::Admin, "*:*.one-0123456789abcdef".to_string()),
                (TokenType::Admin, "*:*.two-0123456789abcdef".to_string()),
                (
                    TokenType::Frontend,
                    "default:development.three-0123456789".to_string()
                ),
            ]
        );
        let ids: Vec<_> = settings.projects.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["web", "app"]);
        assert_eq!(settings.projects[1].description.as_deref(), Some("the app"));
        assert_eq!(settings.environments.len(), 1);
        assert_eq!(settings.environments[0].name, "staging");
        assert!(!settings.environments[0].enabled);
        // Ours win over Unleash's name for the same list.
        let settings = load(&[
            ("INIT_ADMIN_API_TOKENS", "*:*.unleash-0123456789"),
            ("KEYWARDEN__BOOTSTRAP__ADMIN_TOKENS", "*:*.ours-0123456789"),
        ]);
        assert_eq!(settings.bootstrap.admin_tokens.len(), 1);
        assert_eq!(
            settings.init_tokens()[0].credential.expose_secret(),
            "*:*.ours-0123456789"
        );
        let text = load_err(&[("KEYWARDEN__PROJECTS", "web")]);
        assert!(text.contains("projects"), "{text}");
    }

    #[test]
    fn the_write_engine_defaults_are_the_measured_ones() {
        let settings = load(&[]);
        assert_eq!(
            settings.sqlite_options().engine,
            WriteEngineTuning::default()
        );
        let settings = load(&[
            ("KEYWARDEN__DATABASE__WRITE_BATCH_MAX", "16"),
            ("KEYWARDEN__DATABASE__CHECKPOINT_FRESH_MS", "0"),
        ]);
        let engine = settings.sqlite_options().engine;
        assert_eq!(engine.max_batch, 16);
        assert_eq!(engine.checkpoint_fresh, Duration::ZERO);
    }

    #[test]
    fn unusable_database_values_are_refused_by_name() {
        for (key, value) in [
            ("WRITE_BATCH_MAX", "0"),
            ("CHECKPOINT_INTERVAL_MS", "0"),
            ("BACKGROUND_CHECKPOINT_INTERVAL_MS", "0"),
            ("OWN_WRITE_RANGES_MAX", "0"),
            ("BUSY_TIMEOUT_MS", "2147483648"),
            ("STATEMENT_TIMEOUT_MS", "2147483648"),
        ] {
            let env = [(format!("KEYWARDEN__DATABASE__{key}"), value.to_string())].into();
            let error = Settings::load(None, env).expect_err(key).to_string();
            assert!(
                error.contains(&format!("database.{}", key.to_lowercase())),
                "{error}"
            );
        }
    }

    #[test]
    fn invalid_names_in_configuration_are_refused() {
        let mut settings = load(&[]);
        settings.environments[0].name = "pre.prod".into();
        assert!(settings.service_settings().is_err());
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://kw:hunter2@db:5432/kw"),
            "postgres://kw:<redacted>@db:5432/kw"
        );
        assert_eq!(
            redact_url("postgres://kw:p@ss@db/kw?sslmode=require"),
            "postgres://kw:<redacted>@db/kw?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/kw?user=kw&password=hunter2"),
            "postgres://db/kw?user=kw&password=<redacted>"
        );
        assert_eq!(redact_url("sqlite://data/kw.db"), "sqlite://data/kw.db");
        let mut settings = load(&[]);
        settings.database.url = "postgres://kw:hunter2@db/kw".into();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
