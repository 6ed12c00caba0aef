//! Ready-made tokens for tests anywhere in the workspace (feature
//! `test-support`), so every suite builds them the same way.
#![expect(
    clippy::unwrap_used,
    reason = "fixtures for tests: a bad one should fail the test at once"
)]

use chrono::{DateTime, TimeZone, Utc};

use crate::{
    ApiToken, Credential, EnvironmentName, EnvironmentScope, NewToken, Projects, SecretMaterial,
    TokenName, TokenType,
};

/// A fixed instant tests can count from: 2030-01-01T00:00:00Z plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

/// Randomness that differs by `seed` (never use outside tests).
pub fn material(seed: u8) -> SecretMaterial {
    SecretMaterial {
        selector: [seed; 16],
        random: [seed.wrapping_add(1); 32],
    }
}

/// A token named `name` issued at `issued_at` from `seed`: an admin token is
/// `*:*`; any other type is scoped to `projects` in `development`.
///
/// # Panics
/// When the arguments break the domain's rules (a test bug).
pub fn token(
    seed: u8,
    name: &str,
    token_type: TokenType,
    projects: &[&str],
    issued_at: DateTime<Utc>,
) -> (ApiToken, Credential) {
    let environment = if token_type.is_admin() {
        EnvironmentScope::All
    } else {
        EnvironmentScope::Named(EnvironmentName::parse("development").unwrap())
    };
    NewToken::new(
        TokenName::parse(name).unwrap(),
        token_type,
        Projects::from_ids(projects).unwrap(),
        environment,
        None,
    )
    .unwrap()
    .issue(&material(seed), issued_at)
}

/// `token` with its expiry and revision set, as storage would return it.
///
/// # Panics
/// As for [`token`].
pub fn stored(token: &ApiToken, revision: i64, expires_at: Option<DateTime<Utc>>) -> ApiToken {
    ApiToken::restore(
        token.selector(),
        *token.verifier(),
        token.name().clone(),
        token.token_type(),
        token.projects().clone(),
        token.environment().clone(),
        expires_at,
        token.created_at(),
        token.seen_at(),
        revision,
    )
    .unwrap()
}
