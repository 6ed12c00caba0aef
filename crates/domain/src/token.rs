//! The API token and the names it is made of, with the rules that bind them:
//! admin tokens reach every project and environment (`*:*`); other tokens are
//! bound to one concrete environment; a token is usable until its expiry.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::audit::TokenFacts;
use crate::credential::{Credential, SecretMaterial, Selector, Verifier};
use crate::time::truncate_to_millis;
use crate::DomainError;

const MAX_ID_CHARS: usize = 100;

/// What a token may be used for. `Client` is the older name of `Backend`; both
/// are kept as created because reads must return the type as it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    Client,
    Backend,
    Frontend,
    Admin,
}

impl TokenType {
    /// Case-insensitive, as Unleash accepts it.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text.to_ascii_lowercase().as_str() {
            "client" => Ok(Self::Client),
            "backend" => Ok(Self::Backend),
            "frontend" => Ok(Self::Frontend),
            "admin" => Ok(Self::Admin),
            _ => Err(DomainError::InvalidTokenType(text.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Backend => "backend",
            Self::Frontend => "frontend",
            Self::Admin => "admin",
        }
    }

    pub fn is_admin(self) -> bool {
        self == Self::Admin
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// URL-friendly identifiers: they appear in credentials and paths.
fn valid_identifier(text: &str, extra: &[char]) -> bool {
    !text.is_empty()
        && text.chars().count() <= MAX_ID_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
}

/// A project id such as `default`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if valid_identifier(text, &['.', '~']) {
            Ok(Self(text.to_string()))
        } else {
            Err(DomainError::InvalidProjectId(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An environment name such as `development`. No `.`: it ends the environment
/// part of a credential.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvironmentName(String);

impl EnvironmentName {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if valid_identifier(text, &['~']) {
            Ok(Self(text.to_string()))
        } else {
            Err(DomainError::InvalidEnvironmentName(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The projects a token reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Projects {
    All,
    Listed(BTreeSet<ProjectId>),
}

impl Projects {
    pub fn single(id: ProjectId) -> Self {
        Self::Listed(BTreeSet::from([id]))
    }

    /// From the request's list: `*` anywhere means all projects, duplicates
    /// collapse, an empty list is refused.
    pub fn from_ids<I, S>(ids: I) -> Result<Self, DomainError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut listed = BTreeSet::new();
        let mut all = false;
        for id in ids {
            match id.as_ref() {
                "*" => all = true,
                other => {
                    listed.insert(ProjectId::parse(other)?);
                }
            }
        }
        match (all, listed.is_empty()) {
            (true, _) => Ok(Self::All),
            (false, true) => Err(DomainError::EmptyProjects),
            (false, false) => Ok(Self::Listed(listed)),
        }
    }

    /// `["*"]` or the project ids, as the contract's `projects` field.
    pub fn ids(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_string()],
            Self::Listed(ids) => ids.iter().map(|id| id.0.clone()).collect(),
        }
    }

    /// The contract's `project` field: the ids joined with `,`.
    pub fn joined(&self) -> String {
        self.ids().join(",")
    }

    /// `*`, the single project, or `[]` for several: the first part of a credential.
    pub fn credential_prefix(&self) -> String {
        match self {
            Self::All => "*".to_string(),
            Self::Listed(ids) if ids.len() == 1 => ids.iter().map(|id| id.0.clone()).collect(),
            Self::Listed(_) => "[]".to_string(),
        }
    }
}

/// The environments a token reaches: all (`*`, admin tokens only) or one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnvironmentScope {
    All,
    Named(EnvironmentName),
}

impl EnvironmentScope {
    pub fn as_str(&self) -> &str {
        match self {
            Self::All => "*",
            Self::Named(name) => name.as_str(),
        }
    }
}

/// Free text chosen by the creator; not unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Longest name, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 255;

    /// Printable text: control characters (NUL among them, which PostgreSQL
    /// cannot store) are refused.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.trim().is_empty()
            || text.chars().count() > Self::MAX_CHARS
            || text.chars().any(char::is_control)
        {
            return Err(DomainError::InvalidTokenName {
                max: Self::MAX_CHARS,
            });
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scope rules every token obeys, whatever created it.
fn check_scope(
    token_type: TokenType,
    projects: &Projects,
    environment: &EnvironmentScope,
) -> Result<(), DomainError> {
    match (token_type, environment) {
        (TokenType::Admin, EnvironmentScope::All) if *projects == Projects::All => Ok(()),
        (TokenType::Admin, _) => Err(DomainError::AdminScope),
        (other, EnvironmentScope::All) => Err(DomainError::WildcardEnvironment {
            token_type: other.as_str(),
        }),
        (_, EnvironmentScope::Named(_)) => Ok(()),
    }
}

/// A validated request for a new token, before it has a credential.
#[derive(Debug, Clone)]
pub struct NewToken {
    name: TokenName,
    token_type: TokenType,
    projects: Projects,
    environment: EnvironmentScope,
    expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// # Errors
    /// `AdminScope` or `WildcardEnvironment` when the scope breaks the rules.
    pub fn new(
        name: TokenName,
        token_type: TokenType,
        projects: Projects,
        environment: EnvironmentScope,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, DomainError> {
        check_scope(token_type, &projects, &environment)?;
        Ok(Self {
            name,
            token_type,
            projects,
            environment,
            expires_at: expires_at.map(truncate_to_millis),
        })
    }

    pub fn projects(&self) -> &Projects {
        &self.projects
    }

    pub fn environment(&self) -> &EnvironmentScope {
        &self.environment
    }

    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// Mints a fresh v2 credential for this token. The credential is returned
    /// to be shown once; the token keeps only its selector and verifier.
    pub fn issue(self, material: &SecretMaterial, now: DateTime<Utc>) -> (ApiToken, Credential) {
        let credential = Credential::generate(&self.projects, &self.environment, material);
        let selector = Selector::from_bytes(material.selector);
        (self.with_credential(&credential, selector, now), credential)
    }

    /// A token for a credential chosen elsewhere (bootstrap tokens): a v2
    /// credential keeps the selector it embeds, any other gets `identifier`,
    /// which must be random (see `credential`).
    pub fn with_credential(
        self,
        credential: &Credential,
        identifier: Selector,
        now: DateTime<Utc>,
    ) -> ApiToken {
        ApiToken {
            selector: credential.selector().unwrap_or(identifier),
            verifier: credential.verifier(),
            name: self.name,
            token_type: self.token_type,
            projects: self.projects,
            environment: self.environment,
            expires_at: self.expires_at,
            created_at: truncate_to_millis(now),
            seen_at: None,
            revision: 0,
        }
    }
}

/// A stored API token. Holds no plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    selector: Selector,
    verifier: Verifier,
    name: TokenName,
    token_type: TokenType,
    projects: Projects,
    environment: EnvironmentScope,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    seen_at: Option<DateTime<Utc>>,
    revision: i64,
}

impl ApiToken {
    /// Rebuilds a token read back from storage, re-checking its invariants so a
    /// corrupted row is reported instead of trusted.
    #[expect(clippy::too_many_arguments, reason = "one argument per stored column")]
    pub fn restore(
        selector: Selector,
        verifier: Verifier,
        name: TokenName,
        token_type: TokenType,
        projects: Projects,
        environment: EnvironmentScope,
        expires_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
        seen_at: Option<DateTime<Utc>>,
        revision: i64,
    ) -> Result<Self, DomainError> {
        check_scope(token_type, &projects, &environment)?;
        Ok(Self {
            selector,
            verifier,
            name,
            token_type,
            projects,
            environment,
            expires_at: expires_at.map(truncate_to_millis),
            created_at: truncate_to_millis(created_at),
            seen_at: seen_at.map(truncate_to_millis),
            revision,
        })
    }

    pub fn selector(&self) -> Selector {
        self.selector
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn name(&self) -> &TokenName {
        &self.name
    }

    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    pub fn projects(&self) -> &Projects {
        &self.projects
    }

    pub fn environment(&self) -> &EnvironmentScope {
        &self.environment
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn seen_at(&self) -> Option<DateTime<Utc>> {
        self.seen_at
    }

    /// Incremented by storage on every change; lets caches that hear about
    /// changes out of order keep the newest.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Usable iff it has no expiry or the expiry is still ahead of `now`.
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now)
    }

    /// The token with a new expiry (any instant: a past one expires it now).
    pub fn with_expiry(&self, expires_at: DateTime<Utc>) -> Self {
        Self {
            expires_at: Some(truncate_to_millis(expires_at)),
            ..self.clone()
        }
    }

    /// The token as storage holds it at `revision`.
    pub fn with_revision(self, revision: i64) -> Self {
        Self { revision, ..self }
    }

    /// The token with a later last-seen instant (earlier ones are ignored).
    pub fn seen(self, at: DateTime<Utc>) -> Self {
        let at = truncate_to_millis(at);
        Self {
            seen_at: Some(self.seen_at.map_or(at, |seen| seen.max(at))),
            ..self
        }
    }

    /// What an audit event records about this token: no verifier, no revision.
    pub fn facts(&self) -> TokenFacts {
        TokenFacts {
            selector: self.selector,
            name: self.name.clone(),
            token_type: self.token_type,
            projects: self.projects.clone(),
            environment: self.environment.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            seen_at: self.seen_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn env(name: &str) -> EnvironmentScope {
        EnvironmentScope::Named(EnvironmentName::parse(name).unwrap())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn backend_token(expires_at: Option<DateTime<Utc>>) -> ApiToken {
        let new = NewToken::new(
            TokenName::parse("ci").unwrap(),
            TokenType::Backend,
            Projects::All,
            env("development"),
            expires_at,
        )
        .unwrap();
        let material = SecretMaterial {
            selector: [1; 16],
            random: [2; 32],
        };
        new.issue(&material, now()).0
    }

    #[test]
    fn token_types_parse_case_insensitively_and_keep_their_name() {
        assert_eq!(TokenType::parse("Client").unwrap(), TokenType::Client);
        assert_eq!(TokenType::parse("BACKEND").unwrap().as_str(), "backend");
        assert_eq!(TokenType::parse("frontend").unwrap(), TokenType::Frontend);
        assert!(matches!(
            TokenType::parse("superuser"),
            Err(DomainError::InvalidTokenType(t)) if t == "superuser"
        ));
    }

    #[test]
    fn projects_collapse_wildcards_and_duplicates() {
        assert_eq!(Projects::from_ids(["a", "*"]).unwrap(), Projects::All);
        let listed = Projects::from_ids(["b", "a", "b"]).unwrap();
        assert_eq!(listed.ids(), vec!["a", "b"]);
        assert_eq!(listed.joined(), "a,b");
        assert_eq!(listed.credential_prefix(), "[]");
        assert_eq!(
            Projects::from_ids(Vec::<String>::new()),
            Err(DomainError::EmptyProjects)
        );
        assert!(Projects::from_ids(["bad:id"]).is_err());
    }

    #[test]
    fn admin_tokens_must_be_star_star() {
        let name = TokenName::parse("admin").unwrap();
        assert!(NewToken::new(
            name.clone(),
            TokenType::Admin,
            Projects::All,
            EnvironmentScope::All,
            None
        )
        .is_ok());
        assert_eq!(
            NewToken::new(
                name.clone(),
                TokenType::Admin,
                Projects::All,
                env("development"),
                None
            )
            .unwrap_err(),
            DomainError::AdminScope
        );
        let one = Projects::from_ids(["default"]).unwrap();
        assert_eq!(
            NewToken::new(name, TokenType::Admin, one, EnvironmentScope::All, None).unwrap_err(),
            DomainError::AdminScope
        );
    }

    #[test]
    fn other_tokens_need_a_concrete_environment() {
        for token_type in [TokenType::Client, TokenType::Backend, TokenType::Frontend] {
            let err = NewToken::new(
                TokenName::parse("x").unwrap(),
                token_type,
                Projects::All,
                EnvironmentScope::All,
                None,
            )
            .unwrap_err();
            assert!(
                matches!(err, DomainError::WildcardEnvironment { .. }),
                "{token_type}"
            );
        }
    }

    #[test]
    fn names_must_not_be_blank_or_huge() {
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse(&"x".repeat(256)).is_err());
        assert!(TokenName::parse("a\u{0}b").is_err());
        assert!(TokenName::parse("tab\there").is_err());
        assert_eq!(TokenName::parse(" ok ").unwrap().as_str(), " ok ");
    }

    #[test]
    fn environment_names_exclude_the_credential_separator() {
        assert!(EnvironmentName::parse("pre.prod").is_err());
        assert!(EnvironmentName::parse("*").is_err());
        assert!(EnvironmentName::parse("production").is_ok());
    }

    #[test]
    fn usable_until_the_expiry_instant() {
        assert!(backend_token(None).is_usable_at(now()));
        let expires = now() + Duration::seconds(1);
        let token = backend_token(Some(expires));
        assert!(token.is_usable_at(now()));
        assert!(!token.is_usable_at(expires));
        assert!(!token.is_usable_at(expires + Duration::milliseconds(1)));
    }

    #[test]
    fn with_expiry_changes_only_the_expiry() {
        let token = backend_token(None);
        let past = now() - Duration::days(1);
        let expired = token.with_expiry(past);
        assert_eq!(expired.expires_at(), Some(past));
        assert!(!expired.is_usable_at(now()));
        assert_eq!(expired.with_expiry(past), expired);
        assert_eq!(expired.name(), token.name());
        assert_eq!(expired.selector(), token.selector());
    }

    #[test]
    fn restore_rejects_rows_that_break_the_rules() {
        let token = backend_token(None);
        let broken = ApiToken::restore(
            token.selector(),
            *token.verifier(),
            token.name().clone(),
            TokenType::Admin,
            Projects::All,
            env("development"),
            None,
            now(),
            None,
            1,
        );
        assert_eq!(broken.unwrap_err(), DomainError::AdminScope);
    }

    #[test]
    fn facts_are_the_public_fields() {
        let token = backend_token(Some(now()));
        let facts = token.facts();
        assert_eq!(facts.selector, token.selector());
        assert_eq!(facts.projects, Projects::All);
        assert_eq!(facts.environment, env("development"));
        assert_eq!(facts.expires_at, Some(now()));
    }
}
