//! Credentials and how a token is found from one. A credential is the plaintext
//! a client presents; keywarden keeps only its non-secret `Selector` and its
//! SHA-256 `Verifier`. New credentials use Unleash's secure v2 format
//! `<prefix>:<environment>.v2_<selector>_<random>`; operator-chosen bootstrap
//! credentials may look like anything. Such a "legacy" credential carries no
//! selector: its token gets a random one when inserted (never derived from the
//! credential, which would let anyone test guesses of a weak secret against
//! the published identifier), and the credential itself is found by its
//! verifier.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token::{EnvironmentName, EnvironmentScope, ProjectId, Projects};
use crate::DomainError;

const SELECTOR_BYTES: usize = 16;
const RANDOM_BYTES: usize = 32;
const SELECTOR_CHARS: usize = 22;
const RANDOM_CHARS: usize = 43;
const V2_MARKER: &str = "v2_";

/// The public identifier of a token: shown as `secret` on reads and accepted in
/// place of the full credential when addressing a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector([u8; SELECTOR_BYTES]);

impl Selector {
    pub const fn from_bytes(bytes: [u8; SELECTOR_BYTES]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SELECTOR_BYTES] {
        &self.0
    }

    /// Parses the canonical 22-character base64url form (no padding).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != SELECTOR_CHARS {
            return None;
        }
        // base64 sizes its output check from a rounded-up estimate, so give it room.
        let mut out = [0u8; SELECTOR_BYTES + 2];
        let written = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
        if written != SELECTOR_BYTES {
            return None;
        }
        let mut bytes = [0u8; SELECTOR_BYTES];
        bytes.copy_from_slice(&out[..SELECTOR_BYTES]);
        Some(Self(bytes))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({self})")
    }
}

/// SHA-256 of a full credential. Comparisons are constant-time.
#[derive(Clone, Copy)]
pub struct Verifier([u8; 32]);

impl Verifier {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn of(credential: &str) -> Self {
        Self(Sha256::digest(credential.as_bytes()).into())
    }
}

impl PartialEq for Verifier {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Verifier {}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier(<redacted>)")
    }
}

/// Fresh randomness for one new credential, from the secret generator port.
pub struct SecretMaterial {
    pub selector: [u8; SELECTOR_BYTES],
    pub random: [u8; RANDOM_BYTES],
}

impl fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretMaterial(<redacted>)")
    }
}

/// Fewer characters than this after the `<projects>:<env>.` prefix of an
/// operator-chosen credential can be guessed; start-up refuses them.
pub const MIN_SECRET_CHARS: usize = 16;
/// Fewer than this still start, with a warning.
pub const RECOMMENDED_SECRET_CHARS: usize = 32;
/// Secrets Unleash's documentation shows in examples, so every attacker
/// tries them first, whatever the prefix.
const WELL_KNOWN_SECRETS: [&str; 3] = [
    "unleash-insecure-api-token",
    "unleash-insecure-admin-api-token",
    "unleash-insecure-frontend-api-token",
];

/// How hard an operator-chosen credential is to guess (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretStrength {
    /// A default from Unleash's documentation.
    WellKnown,
    /// Shorter than [`MIN_SECRET_CHARS`].
    TooShort,
    /// Shorter than [`RECOMMENDED_SECRET_CHARS`].
    Short,
    Strong,
}

/// A plaintext credential. Never printed by `Debug`, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps whatever a client presented; any string maps to a lookup key.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Builds a v2 credential for a token of the given scope.
    pub fn generate(
        projects: &Projects,
        environment: &EnvironmentScope,
        material: &SecretMaterial,
    ) -> Self {
        Self(format!(
            "{}:{}.{V2_MARKER}{}_{}",
            projects.credential_prefix(),
            environment.as_str(),
            URL_SAFE_NO_PAD.encode(material.selector),
            URL_SAFE_NO_PAD.encode(material.random),
        ))
    }

    /// The plaintext, for the one moment it is shown to its owner.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::of(&self.0)
    }

    /// The selector a v2 credential embeds; `None` for any other credential,
    /// whose token is then found by its verifier.
    pub fn selector(&self) -> Option<Selector> {
        self.v2_selector()
    }

    /// The embedded selector, if any, and the verifier.
    pub fn key(&self) -> (Option<Selector>, Verifier) {
        (self.v2_selector(), self.verifier())
    }

    fn v2_selector(&self) -> Option<Selector> {
        let (_, rest) = self.0.split_once(':')?;
        let (_, secret) = rest.split_once('.')?;
        let body = secret.strip_prefix(V2_MARKER)?;
        if body.len() != SELECTOR_CHARS + 1 + RANDOM_CHARS || !body.is_char_boundary(SELECTOR_CHARS)
        {
            return None;
        }
        let (selector, random) = body.split_at(SELECTOR_CHARS);
        let random = random.strip_prefix('_')?;
        let mut decoded = [0u8; RANDOM_BYTES + 2];
        if URL_SAFE_NO_PAD.decode_slice(random, &mut decoded).ok()? != RANDOM_BYTES {
            return None;
        }
        Selector::parse(selector)
    }

    /// How guessable the part after the `<projects>:<env>.` prefix is (the
    /// whole text when there is no such prefix).
    pub fn secret_strength(&self) -> SecretStrength {
        let secret = self
            .0
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once('.'))
            .map_or(self.0.as_str(), |(_, secret)| secret);
        let chars = secret.chars().count();
        if WELL_KNOWN_SECRETS.contains(&secret) {
            SecretStrength::WellKnown
        } else if chars < MIN_SECRET_CHARS {
            SecretStrength::TooShort
        } else if chars < RECOMMENDED_SECRET_CHARS {
            SecretStrength::Short
        } else {
            SecretStrength::Strong
        }
    }

    /// The scope an operator-chosen credential declares in its prefix
    /// (`<projects>:<environment>.<anything>`), for bootstrap tokens.
    ///
    /// # Errors
    /// `MalformedCredential` when the shape is wrong, `AmbiguousCredentialProjects`
    /// for a `[]` prefix (it does not say which projects), or the name errors.
    pub fn declared_scope(&self) -> Result<(Projects, EnvironmentScope), DomainError> {
        let (projects, rest) = self
            .0
            .split_once(':')
            .ok_or(DomainError::MalformedCredential)?;
        let (environment, secret) = rest
            .split_once('.')
            .ok_or(DomainError::MalformedCredential)?;
        if secret.is_empty() || self.0.chars().any(char::is_whitespace) {
            return Err(DomainError::MalformedCredential);
        }
        let projects = match projects {
            "*" => Projects::All,
            "[]" => return Err(DomainError::AmbiguousCredentialProjects),
            id => Projects::single(ProjectId::parse(id)?),
        };
        let environment = match environment {
            "*" => EnvironmentScope::All,
            name => EnvironmentScope::Named(EnvironmentName::parse(name)?),
        };
        Ok((projects, environment))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// How an administrator names a token in a path: its selector, or its full
/// credential (which must then match the stored verifier). A credential that
/// is not in v2 format embeds no selector (`selector: None`): its token is
/// found by the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRef {
    Selector(Selector),
    Credential {
        selector: Option<Selector>,
        verifier: Verifier,
    },
}

impl TokenRef {
    pub fn parse(text: &str) -> Self {
        match Selector::parse(text) {
            Some(selector) => Self::Selector(selector),
            None => {
                let (selector, verifier) = Credential::new(text).key();
                Self::Credential { selector, verifier }
            }
        }
    }

    /// The selector named or embedded; `None` for a legacy credential.
    pub fn selector(&self) -> Option<Selector> {
        match self {
            Self::Selector(selector) => Some(*selector),
            Self::Credential { selector, .. } => *selector,
        }
    }

    /// The verifier of a named credential.
    pub fn verifier(&self) -> Option<&Verifier> {
        match self {
            Self::Selector(_) => None,
            Self::Credential { verifier, .. } => Some(verifier),
        }
    }

    /// Whether a token with this verifier is the one referred to.
    pub fn matches(&self, verifier: &Verifier) -> bool {
        match self {
            Self::Selector(_) => true,
            Self::Credential {
                verifier: given, ..
            } => given == verifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> SecretMaterial {
        SecretMaterial {
            selector: [7; 16],
            random: [9; 32],
        }
    }

    fn generated(projects: Projects, environment: &str) -> Credential {
        let environment = EnvironmentScope::Named(EnvironmentName::parse(environment).unwrap());
        Credential::generate(&projects, &environment, &material())
    }

    #[test]
    fn v2_credentials_have_the_unleash_shape() {
        let credential = generated(Projects::All, "development");
        let text = credential.expose_secret();
        let (prefix, rest) = text.split_once(':').unwrap();
        assert_eq!(prefix, "*");
        let (environment, secret) = rest.split_once('.').unwrap();
        assert_eq!(environment, "development");
        assert!(secret.starts_with("v2_"));
        assert_eq!(secret.len(), 3 + 22 + 1 + 43);
        assert_eq!(credential.selector(), Some(Selector::from_bytes([7; 16])));
    }

    #[test]
    fn prefixes_follow_the_projects() {
        let one = Projects::from_ids(["default".to_string()]).unwrap();
        assert!(generated(one, "production")
            .expose_secret()
            .starts_with("default:production.v2_"));
        let two = Projects::from_ids(["a".to_string(), "b".to_string()]).unwrap();
        assert!(generated(two, "production")
            .expose_secret()
            .starts_with("[]:production.v2_"));
    }

    #[test]
    fn selector_round_trips_through_text() {
        let selector = Selector::from_bytes([0xfb; 16]);
        let text = selector.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(Selector::parse(&text), Some(selector));
        assert_eq!(Selector::parse("too-short"), None);
        assert_eq!(Selector::parse("!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn legacy_credentials_embed_no_selector() {
        let legacy = Credential::new("*:*.unleash-insecure-admin-api-token");
        assert_eq!(legacy.selector(), None);
        let by_credential = TokenRef::parse(legacy.expose_secret());
        assert_eq!(by_credential.selector(), None);
        assert!(by_credential.matches(&legacy.verifier()));
    }

    #[test]
    fn a_broken_v2_body_embeds_no_selector() {
        let good = generated(Projects::All, "development");
        let truncated = Credential::new(&good.expose_secret()[..good.expose_secret().len() - 1]);
        assert_eq!(truncated.selector(), None);
        assert!(good.selector().is_some());
    }

    #[test]
    fn verifier_is_sha256_of_the_whole_credential() {
        let credential = Credential::new("abc");
        assert_eq!(
            credential.verifier().as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts with ba7816bf"
        );
    }

    #[test]
    fn secret_strength_counts_after_the_prefix_and_knows_unleash_defaults() {
        for known in [
            "*:*.unleash-insecure-admin-api-token",
            "*:*.unleash-insecure-api-token",
            "default:development.unleash-insecure-api-token",
            "*:development.unleash-insecure-api-token",
            "*:development.unleash-insecure-frontend-api-token",
        ] {
            assert_eq!(
                Credential::new(known).secret_strength(),
                SecretStrength::WellKnown,
                "{known}"
            );
        }
        let strength = |secret: &str| Credential::new(format!("*:*.{secret}")).secret_strength();
        assert_eq!(strength(&"x".repeat(15)), SecretStrength::TooShort);
        assert_eq!(strength(&"é".repeat(15)), SecretStrength::TooShort);
        assert_eq!(strength(&"x".repeat(16)), SecretStrength::Short);
        assert_eq!(strength(&"x".repeat(31)), SecretStrength::Short);
        assert_eq!(strength(&"x".repeat(32)), SecretStrength::Strong);
        assert_eq!(
            Credential::new("a-very-long-project-name:production.short").secret_strength(),
            SecretStrength::TooShort,
            "the prefix does not count"
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let credential = Credential::new("*:*.super-secret");
        assert!(!format!("{credential:?}").contains("super-secret"));
        assert!(!format!("{:?}", material()).contains('9'));
        assert_eq!(
            format!("{:?}", credential.verifier()),
            "Verifier(<redacted>)"
        );
    }

    #[test]
    fn declared_scope_of_bootstrap_credentials() {
        let (projects, environment) = Credential::new("*:*.x").declared_scope().unwrap();
        assert_eq!(
            (projects, environment),
            (Projects::All, EnvironmentScope::All)
        );
        let (projects, environment) = Credential::new("default:development.x")
            .declared_scope()
            .unwrap();
        assert_eq!(projects.ids(), vec!["default"]);
        assert_eq!(environment.as_str(), "development");
        assert_eq!(
            Credential::new("[]:development.x").declared_scope(),
            Err(DomainError::AmbiguousCredentialProjects)
        );
        for bad in ["no-colon", "*:no-dot", "*:*.", "*:*.has space"] {
            assert_eq!(
                Credential::new(bad).declared_scope(),
                Err(DomainError::MalformedCredential),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_refs_by_selector_or_credential() {
        let credential = generated(Projects::All, "development");
        let selector = credential.selector().unwrap();
        let by_selector = TokenRef::parse(&selector.to_string());
        assert_eq!(by_selector, TokenRef::Selector(selector));
        let by_credential = TokenRef::parse(credential.expose_secret());
        assert_eq!(by_credential.selector(), Some(selector));
        assert!(by_credential.matches(&credential.verifier()));
        assert!(!by_credential.matches(&Credential::new("other").verifier()));
        assert!(by_selector.matches(&Credential::new("other").verifier()));
    }
}
