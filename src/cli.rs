//! The `keywarden` command line: serving, and the operator's tools that work
//! on the configured database directly, without HTTP (first admin token,
//! recovery, inspection). Changes made here are audited with actor `cli` and
//! reach running servers through their change feed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{Duration, Utc};
use clap::{Parser, Subcommand};
use keywarden_application::{
    check_init_tokens, operator, webhook_status, AppError, CreateToken, EndpointStatus,
    NotificationSettings, OperatorCommands, Principal, RotateToken,
};
use keywarden_domain::{format_millis, parse_offset_date_time, representable, ApiToken, TokenRef};

use crate::storage::{describe_database, Creation, Storage};
use crate::{Settings, StartupError};

/// The name audit events record for changes made here.
const ACTOR: &str = "cli";

#[derive(Debug, Parser)]
#[command(
    name = "keywarden",
    version,
    about = "Self-hosted API tokens behind the Unleash Admin API",
    long_about = "Self-hosted API tokens behind the Unleash Admin API.\n\n\
        Without a command, serves the API. Configuration comes from config/default.toml \
        (built in), the file named by --config or KEYWARDEN_CONFIG, the Unleash variables \
        (DATABASE_URL, HTTP_PORT, …) and KEYWARDEN__SECTION__KEY variables."
)]
pub struct Cli {
    /// A TOML file with settings to change (instead of KEYWARDEN_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Let a command other than serve and migrate create the SQLite database
    /// when there is none (without it, such a command stops: it was probably
    /// run in the wrong directory or with the wrong configuration).
    #[arg(long, global = true)]
    pub create_database: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Admin API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create, list, expire and delete API tokens in the configured database.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect webhook deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Write a consistent copy of the SQLite database while it is in use.
    Backup {
        /// The file to create (it must not exist).
        #[arg(value_name = "FILE")]
        to: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; its credential is printed as the last line, once.
    Create {
        /// admin, backend, client or frontend.
        #[arg(long = "type", value_name = "TYPE")]
        token_type: String,
        #[arg(long)]
        name: String,
        /// Default: development (admin tokens: every environment).
        #[arg(long)]
        environment: Option<String>,
        /// Comma-separated project ids. Default: every project.
        #[arg(long, value_delimiter = ',', value_name = "P,Q")]
        projects: Option<Vec<String>>,
        /// Lifetime, such as 90m, 12h, 30d or 2w. Default: never expires.
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION")]
        expires_in: Option<Duration>,
    },
    /// List every token (never their secrets).
    List {
        /// Only the tokens that break the lifetime policy ([tokens]
        /// max_lifetime, require_expiry): made before it changed.
        #[arg(long)]
        violating_policy: bool,
    },
    /// Replace a token (any type, admin included) by a successor with the
    /// same name and scope; the new credential is printed as the last line, once.
    Rotate {
        /// The full credential or its selector.
        token: String,
        /// How long the old credential keeps working, such as 24h.
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION",
              required_unless_present = "now", conflicts_with = "now")]
        overlap: Option<Duration>,
        /// Cut the old credential off at once (it leaked).
        #[arg(long)]
        now: bool,
        /// The new token's lifetime. Default: the old token's lifetime, else
        /// [tokens] default_lifetime, else never.
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION")]
        expires_in: Option<Duration>,
    },
    /// Expire a token now, or at --at.
    Expire {
        /// The token's selector (from `tokens list`); a full credential works too.
        token: String,
        /// An RFC 3339 date-time with offset. Default: now.
        #[arg(long, value_name = "DATE-TIME")]
        at: Option<String>,
    },
    /// Delete a token.
    Delete {
        /// The token's selector (from `tokens list`); a full credential works too.
        token: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Each configured endpoint's backlog, retries, counts and last error.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective settings as TOML,
    /// each with its source, secrets redacted.
    Check,
}

/// `90s`, `15m`, `12h`, `30d`, `2w`, as the configuration writes them.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    keywarden_domain::parse_duration(text)
}

/// `lifetime` from now, named by `flag` when it reaches too far.
fn from_now(lifetime: Duration, flag: &str) -> Result<chrono::DateTime<Utc>, CommandError> {
    Utc::now()
        .checked_add_signed(lifetime)
        .filter(representable)
        .ok_or_else(|| CommandError::Usage(format!("{flag} reaches past the year 9999")))
}

/// What a one-off command failed with.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{0}")]
    Usage(String),
}

/// Opens the database, after naming it on standard error so the operator
/// sees which one a command works on.
async fn open(settings: &Settings, creation: Creation) -> Result<Storage, CommandError> {
    eprintln!("keywarden: database {}", describe_database(settings));
    Ok(Storage::open(settings, creation).await?)
}

/// Opens storage and the operator's commands over it. Opening writes
/// nothing but pending migrations; each command writes only what it changes.
async fn commands(
    settings: &Settings,
    creation: Creation,
) -> Result<Arc<dyn OperatorCommands>, CommandError> {
    let storage = open(settings, creation).await?;
    let declared = settings.service_settings().map_err(StartupError::from)?;
    Ok(operator(storage.adapters(), &declared))
}

/// Where the settings were read from, for `config check` to say.
pub struct Sources {
    pub overlay: Option<PathBuf>,
    pub env: std::collections::HashMap<String, String>,
}

/// Runs every command but `serve`, printing to standard output.
/// `create_database` is the `--create-database` flag.
pub async fn run(
    command: Command,
    settings: Settings,
    sources: &Sources,
    create_database: bool,
) -> Result<ExitCode, CommandError> {
    let actor = Principal::operator(ACTOR);
    let creation = if create_database {
        Creation::Allowed
    } else {
        Creation::Refused
    };
    match command {
        Command::Serve => unreachable!("serve is run by main"),
        Command::Backup { to } => {
            let storage = open(&settings, creation).await?;
            storage
                .backup(to.clone())
                .await
                .map_err(CommandError::Usage)?;
            say(&format!("wrote a copy of the database to {}", to.display()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open(&settings, Creation::Allowed).await?;
            say("the database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check) => {
            let declared = settings.service_settings().map_err(StartupError::from)?;
            keywarden_persistence_adapter::DatabaseUrl::parse(&settings.database.url)
                .map_err(StartupError::from)?;
            check_init_tokens(&declared, &settings.init_tokens())?;
            crate::check_bootstrap_secrets(&settings)?;
            settings
                .notification_settings()
                .map_err(StartupError::from)?;
            let report = crate::config_report::effective(sources.overlay.as_deref(), &sources.env)
                .map_err(StartupError::from)?;
            say(report.trim_end());
            say("# configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhooks(WebhooksCommand::Status) => {
            let notifications = settings
                .notification_settings()
                .map_err(StartupError::from)?;
            let storage = open(&settings, creation).await?;
            let statuses = webhook_status(storage.notifications().as_ref(), &notifications).await?;
            if notifications.endpoints.is_empty() {
                say("no webhooks are configured ([[webhooks]] in the configuration)");
            }
            print_statuses(&notifications, &statuses);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens(TokensCommand::Create {
            token_type,
            name,
            environment,
            projects,
            expires_in,
        }) => {
            let expires_at = expires_in
                .map(|lifetime| from_now(lifetime, "--expires-in"))
                .transpose()?;
            let commands = commands(&settings, creation).await?;
            let request = CreateToken {
                token_name: name,
                token_type,
                environment,
                projects,
                project: None,
                expires_at,
            };
            let (token, credential) = commands.create_token(&actor, request).await?;
            say(&format!(
                "created {} token {:?} (selector {}). Its credential follows; it is shown only this once:",
                token.token_type(),
                token.name().as_str(),
                token.selector()
            ));
            say(credential.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens(TokensCommand::List { violating_policy }) => {
            let commands = commands(&settings, creation).await?;
            let tokens = match violating_policy {
                true => commands.tokens_violating_policy().await?,
                false => commands.list_tokens().await?,
            };
            print_tokens(&tokens);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens(TokensCommand::Rotate {
            token,
            overlap,
            now: _,
            expires_in,
        }) => {
            // Without --overlap, --now was given (clap requires one of them).
            let previous_expires_at = match overlap {
                Some(overlap) => from_now(overlap, "--overlap")?,
                None => Utc::now(),
            };
            let request = RotateToken {
                previous_expires_at,
                expires_at: expires_in
                    .map(|lifetime| from_now(lifetime, "--expires-in"))
                    .transpose()?,
            };
            let commands = commands(&settings, creation).await?;
            let rotated = commands
                .rotate_token(&actor, TokenRef::parse(&token), request)
                .await?;
            println!(
                "rotated {} token {:?}: the old credential (selector {}) works until {}; the new one (selector {}) follows, shown only this once:",
                rotated.successor.token_type(),
                rotated.successor.name().as_str(),
                rotated.retired.selector(),
                rotated.retired.expires_at().map_or("-".to_string(), |at| format_millis(&at)),
                rotated.successor.selector()
            );
            println!("{}", rotated.credential.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens(TokensCommand::Expire { token, at }) => {
            let at = match at {
                Some(text) => parse_offset_date_time(&text).ok_or_else(|| {
                    CommandError::Usage(format!("--at {text:?} is not a date-time with an offset"))
                })?,
                None => Utc::now(),
            };
            let commands = commands(&settings, creation).await?;
            let found = commands.update_expiry(&actor, target(&token), at).await?;
            Ok(report(found, &format!("expires at {}", format_millis(&at))))
        }
        Command::Tokens(TokensCommand::Delete { token }) => {
            let commands = commands(&settings, creation).await?;
            let found = commands.delete_token(&actor, target(&token)).await?;
            Ok(report(found, "deleted"))
        }
    }
}

/// The token a command names. A full credential works, but on a command line
/// it shows in the process list and the shell history: say so.
fn target(text: &str) -> TokenRef {
    let target = TokenRef::parse(text);
    if let TokenRef::Credential { .. } = target {
        eprintln!(
            "keywarden: warning: a full credential on the command line is visible to other \
             users (process list) and stays in shell history; pass the token's selector, \
             shown by `keywarden tokens list`, instead"
        );
    }
    target
}

/// Writes one line to standard output. A reader that went away early
/// (`keywarden config check | head -1`) is not an error: what it wanted, it got.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn report(found: bool, outcome: &str) -> ExitCode {
    if found {
        say(&format!("token {outcome}"));
        ExitCode::SUCCESS
    } else {
        eprintln!("keywarden: no token matches");
        ExitCode::FAILURE
    }
}

fn print_tokens(tokens: &[ApiToken]) {
    let optional =
        |at: Option<chrono::DateTime<Utc>>| at.map_or("-".to_string(), |at| format_millis(&at));
    let rows: Vec<[String; 8]> = tokens
        .iter()
        .map(|t| {
            [
                t.selector().to_string(),
                t.token_type().to_string(),
                t.name().as_str().to_string(),
                t.projects().joined(),
                t.environment().as_str().to_string(),
                optional(t.expires_at()),
                format_millis(&t.created_at()),
                optional(t.seen_at()),
            ]
        })
        .collect();
    let header = [
        "SELECTOR",
        "TYPE",
        "NAME",
        "PROJECTS",
        "ENVIRONMENT",
        "EXPIRES",
        "CREATED",
        "SEEN",
    ];
    print_table(header, &rows);
}

fn print_statuses(settings: &NotificationSettings, statuses: &[EndpointStatus]) {
    let optional =
        |at: Option<chrono::DateTime<Utc>>| at.map_or("-".to_string(), |at| format_millis(&at));
    let rows: Vec<[String; 9]> = settings
        .endpoints
        .iter()
        .map(|endpoint| {
            let label = endpoint.label();
            match statuses.iter().find(|status| status.url == endpoint.url) {
                Some(status) => [
                    label,
                    status.backlog.to_string(),
                    optional(status.oldest_pending_at),
                    status.attempts.to_string(),
                    optional(status.next_attempt_at),
                    status.sent.to_string(),
                    status.given_up.to_string(),
                    status.held_by.clone().unwrap_or_else(|| "-".into()),
                    status.last_error.as_ref().map_or("-".to_string(), |error| {
                        format!("{} ({})", error, optional(status.last_error_at))
                    }),
                ],
                None => [
                    label,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "not registered yet: deliveries start with the next server start".into(),
                ],
            }
        })
        .collect();
    let header = [
        "ENDPOINT",
        "BACKLOG",
        "OLDEST PENDING",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "SENT",
        "GIVEN UP",
        "HELD BY",
        "LAST ERROR",
    ];
    print_table(header, &rows);
}

/// Columns padded to their widest cell, one line per row after the header.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(str::to_string);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        say(line.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_lifetime("90m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_lifetime("2w"), Ok(Duration::weeks(2)));
        for bad in ["", "30", "d", "0d", "-1d", "3y", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "keywarden",
            "tokens",
            "create",
            "--type",
            "backend",
            "--name",
            "ci",
            "--projects",
            "a,b",
            "--expires-in",
            "30d",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Tokens(TokensCommand::Create {
                projects,
                expires_in,
                ..
            })) => {
                assert_eq!(projects, Some(vec!["a".to_string(), "b".to_string()]));
                assert_eq!(expires_in, Some(Duration::days(30)));
            }
            other => panic!("{other:?}"),
        }
        let rotate = |args: &[&str]| {
            Cli::try_parse_from(["keywarden", "tokens", "rotate", "sel"].iter().chain(args))
        };
        assert!(rotate(&["--overlap", "24h"]).is_ok());
        assert!(rotate(&["--now", "--expires-in", "30d"]).is_ok());
        assert!(rotate(&[]).is_err(), "--overlap or --now is required");
        assert!(rotate(&["--now", "--overlap", "1h"]).is_err());
        assert!(Cli::try_parse_from(["keywarden", "tokens", "list", "--violating-policy"]).is_ok());
        assert!(Cli::try_parse_from(["keywarden"])
            .unwrap()
            .command
            .is_none());
    }
}
