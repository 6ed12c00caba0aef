//! The in-memory view of every credential: what authentication reads instead of
//! the database. It is complete (every stored token is in it), so an unknown
//! credential is rejected from memory without a database round trip, and it is
//! kept exact by applying every committed change, newest revision wins.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use keywarden_domain::{ApiToken, Selector, TokenType, Verifier};

use crate::Principal;

#[derive(Debug)]
enum Entry {
    Live {
        verifier: Verifier,
        name: Arc<str>,
        token_type: TokenType,
        expires_at: Option<DateTime<Utc>>,
        revision: i64,
    },
    /// Deleted tokens stay as tombstones so a change that committed before the
    /// delete but is applied after it cannot bring the token back.
    Deleted,
}

/// Why a credential was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unknown,
    Expired,
}

#[derive(Debug, Default)]
pub(crate) struct CredentialView {
    entries: RwLock<HashMap<Selector, Entry>>,
}

impl CredentialView {
    /// Replaces the whole view with what storage holds now.
    pub(crate) fn load(&self, tokens: &[ApiToken]) {
        let fresh = tokens
            .iter()
            .map(|token| (token.selector(), Self::live(token)))
            .collect();
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// Applies a committed create or update, unless the view already holds a
    /// newer revision of that token or knows it is deleted.
    pub(crate) fn apply(&self, token: &ApiToken) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let newer = match entries.get(&token.selector()) {
            None => true,
            Some(Entry::Live { revision, .. }) => token.revision() > *revision,
            Some(Entry::Deleted) => false,
        };
        if newer {
            entries.insert(token.selector(), Self::live(token));
        }
    }

    pub(crate) fn remove(&self, selector: Selector) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(selector, Entry::Deleted);
    }

    /// Number of live tokens in the view.
    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|entry| matches!(entry, Entry::Live { .. }))
            .count()
    }

    /// Checks a presented credential's key. The selector is not secret, so the
    /// map lookup may take variable time; the verifier comparison is constant-time.
    pub(crate) fn check(
        &self,
        selector: Selector,
        verifier: &Verifier,
        now: DateTime<Utc>,
    ) -> Result<Principal, Rejection> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&selector) {
            Some(Entry::Live {
                verifier: stored,
                name,
                token_type,
                expires_at,
                ..
            }) if stored == verifier => {
                if expires_at.is_some_and(|expires_at| expires_at <= now) {
                    Err(Rejection::Expired)
                } else {
                    Ok(Principal::token(selector, Arc::clone(name), *token_type))
                }
            }
            _ => Err(Rejection::Unknown),
        }
    }

    fn live(token: &ApiToken) -> Entry {
        Entry::Live {
            verifier: *token.verifier(),
            name: Arc::from(token.name().as_str()),
            token_type: token.token_type(),
            expires_at: token.expires_at(),
            revision: token.revision(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use keywarden_domain::{
        Credential, EnvironmentScope, NewToken, Projects, SecretMaterial, TokenName,
    };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn admin(revision: i64, expires_at: Option<DateTime<Utc>>) -> (ApiToken, Credential) {
        let (token, credential) = NewToken::new(
            TokenName::parse("admin").unwrap(),
            TokenType::Admin,
            Projects::All,
            EnvironmentScope::All,
            None,
        )
        .unwrap()
        .issue(
            &SecretMaterial {
                selector: [5; 16],
                random: [6; 32],
            },
            now(),
        );
        let token = ApiToken::restore(
            token.selector(),
            *token.verifier(),
            token.name().clone(),
            token.token_type(),
            token.projects().clone(),
            token.environment().clone(),
            expires_at,
            token.created_at(),
            None,
            revision,
        )
        .unwrap();
        (token, credential)
    }

    fn check(view: &CredentialView, credential: &Credential) -> Result<Principal, Rejection> {
        view.check(credential.selector(), &credential.verifier(), now())
    }

    #[test]
    fn known_credentials_pass_and_others_do_not() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, None);
        view.load(&[token]);
        let principal = check(&view, &credential).unwrap();
        assert_eq!(principal.name(), "admin");
        assert_eq!(
            check(&view, &Credential::new("*:*.nope")),
            Err(Rejection::Unknown)
        );
        let mut tampered = credential.expose_secret().to_string();
        tampered.pop();
        tampered.push('A');
        assert_eq!(
            check(&view, &Credential::new(tampered)),
            Err(Rejection::Unknown)
        );
    }

    #[test]
    fn expiry_is_exclusive_of_the_instant() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, Some(now()));
        view.load(&[token]);
        assert_eq!(check(&view, &credential), Err(Rejection::Expired));
        let (later, _) = admin(2, Some(now() + Duration::milliseconds(1)));
        view.apply(&later);
        assert!(check(&view, &credential).is_ok());
    }

    #[test]
    fn older_revisions_never_overwrite_newer_ones() {
        let view = CredentialView::default();
        let (expired, credential) = admin(3, Some(now() - Duration::days(1)));
        let (stale, _) = admin(2, None);
        view.apply(&expired);
        view.apply(&stale);
        assert_eq!(check(&view, &credential), Err(Rejection::Expired));
    }

    #[test]
    fn deleted_tokens_stay_deleted_even_if_a_stale_change_arrives() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, None);
        view.load(std::slice::from_ref(&token));
        view.remove(token.selector());
        assert_eq!(view.len(), 0);
        view.apply(&token);
        assert_eq!(check(&view, &credential), Err(Rejection::Unknown));
    }
}
