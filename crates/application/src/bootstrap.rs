//! Bootstrap: the first tokens of an empty database — the operator's init
//! tokens, or one generated admin token — checking init tokens without
//! storage for `keywarden config check`, and refusing guessable ones.

use chrono::Utc;
use keywarden_domain::{
    Actor, Credential, EnvironmentScope, NewToken, Projects, SecretStrength, Selector, TokenName,
    TokenType, MIN_SECRET_CHARS, RECOMMENDED_SECRET_CHARS,
};

use crate::catalog::Catalog;
use crate::error::invalid;
use crate::{Adapters, AppError, ServiceSettings};

/// Name recorded as the creator of bootstrap tokens.
const BOOTSTRAP_ACTOR: &str = "system";
/// Name given to bootstrap tokens, as Unleash does.
const BOOTSTRAP_TOKEN_NAME: &str = "admin";

/// An operator-chosen credential to insert on first start.
#[derive(Debug, Clone)]
pub struct InitToken {
    pub token_type: TokenType,
    pub credential: Credential,
}

/// What start-up did about the first tokens.
#[derive(Debug)]
pub enum Bootstrap {
    /// Tokens existed already; nothing was inserted.
    AlreadyInitialised,
    /// The operator's init tokens were inserted.
    Inserted(usize),
    /// No init tokens were given: this admin credential was made, and must be
    /// shown to the operator now because it is never available again.
    Generated(Credential),
}

fn bootstrap_name() -> Result<TokenName, AppError> {
    TokenName::parse(BOOTSTRAP_TOKEN_NAME).map_err(|e| invalid(e, None))
}

/// On an empty database, inserts the operator's init tokens or, without any,
/// one generated admin token. Does nothing when tokens exist.
///
/// # Errors
/// `Validation` for an init token that breaks the rules or names unknown
/// reference data; storage errors as they come.
pub(crate) async fn bootstrap(
    adapters: &Adapters,
    catalog: &Catalog,
    init_tokens: Vec<InitToken>,
) -> Result<Bootstrap, AppError> {
    let now = adapters.clock.now();
    let name = bootstrap_name()?;
    let mut generated = None;
    let tokens = if init_tokens.is_empty() {
        let new = NewToken::new(
            name,
            TokenType::Admin,
            Projects::All,
            EnvironmentScope::All,
            None,
        )
        .map_err(|e| invalid(e, None))?;
        let material = adapters.secrets.generate().map_err(AppError::Internal)?;
        let (token, credential) = new.issue(&material, now);
        generated = Some(credential);
        vec![token]
    } else {
        init_tokens
            .iter()
            .map(|init| {
                let identifier = adapters.secrets.generate().map_err(AppError::Internal)?;
                catalog.init_token(
                    init,
                    name.clone(),
                    Selector::from_bytes(identifier.selector),
                    now,
                )
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let count = tokens.len();
    if !adapters
        .repository
        .insert_initial(tokens, &Actor::named(BOOTSTRAP_ACTOR), now)
        .await?
    {
        return Ok(Bootstrap::AlreadyInitialised);
    }
    Ok(match generated {
        Some(credential) => Bootstrap::Generated(credential),
        None => Bootstrap::Inserted(count),
    })
}

/// Checks bootstrap tokens against the rules and the declared projects and
/// environments, without storage (for `keywarden config check`).
///
/// # Errors
/// `Validation` naming the first offending token.
pub fn check_init_tokens(
    settings: &ServiceSettings,
    init_tokens: &[InitToken],
) -> Result<(), AppError> {
    let catalog = Catalog::declared(settings.projects.clone(), settings.environments.clone());
    let name = bootstrap_name()?;
    for init in init_tokens {
        // Nothing is stored, so any identifier does.
        let identifier = Selector::from_bytes([0; 16]);
        catalog.init_token(
            init,
            name.clone(),
            identifier,
            chrono::DateTime::<Utc>::UNIX_EPOCH,
        )?;
    }
    Ok(())
}

/// The variable an operator sets for init tokens of this type (contract §6).
fn variable(token_type: TokenType) -> &'static str {
    match token_type {
        TokenType::Admin => "INIT_ADMIN_API_TOKENS",
        TokenType::Backend => "INIT_BACKEND_API_TOKENS",
        TokenType::Client => "INIT_CLIENT_API_TOKENS",
        TokenType::Frontend => "INIT_FRONTEND_API_TOKENS",
    }
}

/// Refuses init tokens that can be guessed (a default from Unleash's
/// documentation, or fewer than 16 characters after the prefix) unless
/// `allow_weak`; answers a warning for each one that starts anyway, naming
/// its variable and never its value.
///
/// # Errors
/// `Validation` naming the variable of the first guessable token.
pub fn check_init_token_strength(
    init_tokens: &[InitToken],
    allow_weak: bool,
) -> Result<Vec<String>, AppError> {
    let mut warnings = Vec::new();
    for init in init_tokens {
        let variable = variable(init.token_type);
        let weakness = match init.credential.secret_strength() {
            SecretStrength::Strong => continue,
            SecretStrength::Short => {
                warnings.push(format!(
                    "{variable} holds a credential with fewer than {RECOMMENDED_SECRET_CHARS} \
                     characters after its prefix; use a longer random secret"
                ));
                continue;
            }
            SecretStrength::WellKnown => "a default published in Unleash's documentation".into(),
            SecretStrength::TooShort => {
                format!("shorter than {MIN_SECRET_CHARS} characters after its prefix")
            }
        };
        if !allow_weak {
            return Err(AppError::validation(
                format!(
                    "{variable} holds a credential that is {weakness}, which anyone can guess; \
                     choose a random secret of at least {RECOMMENDED_SECRET_CHARS} characters \
                     (or set bootstrap.allow_weak_tokens = true)"
                ),
                None,
            ));
        }
        warnings.push(format!(
            "{variable} holds a credential that is {weakness}, which anyone can guess; \
             it is accepted only because bootstrap.allow_weak_tokens = true"
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests;
