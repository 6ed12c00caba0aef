//! The in-memory view of every credential: what authentication reads instead of
//! the database. It is complete (every stored token is in it), so an unknown
//! credential is rejected from memory without a database round trip, and it is
//! kept exact by applying every committed change, newest revision wins.
//! Credentials that embed no selector (operator-chosen, not in v2 format) are
//! found through an index from verifier to selector, so they cost one map
//! lookup more and never a scan.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use keywarden_domain::{ApiToken, Selector, Verifier};

use crate::verify::CredentialFacts;
use crate::StoredCredential;

#[derive(Debug)]
enum Entry {
    Live {
        verifier: Verifier,
        /// Shared with every answer that reports them, so a check allocates nothing.
        facts: Arc<CredentialFacts>,
        revision: i64,
        /// When this entry was last written, in the view's own sequence.
        written: u64,
    },
    /// Deleted tokens stay as tombstones so a change that committed before the
    /// delete but is applied after it cannot bring the token back.
    Deleted { written: u64 },
}

impl Entry {
    fn written(&self) -> u64 {
        match self {
            Self::Live { written, .. } | Self::Deleted { written } => *written,
        }
    }
}

/// Why a credential was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unknown,
    Expired,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Selector, Entry>,
    /// The selector of every live entry, by verifier: how a credential that
    /// embeds no selector finds its token.
    by_verifier: HashMap<[u8; 32], Selector>,
    /// Grows with every write to the view.
    sequence: u64,
    /// The mark of the previous reload: tombstones older than it have outlived
    /// any change that could still have been in flight, and can go.
    previous_mark: u64,
    /// Number of `Entry::Live`, kept so reading it costs nothing.
    live: usize,
}

impl State {
    fn next(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    fn apply(&mut self, credential: &StoredCredential) {
        let newer = match self.entries.get(&credential.selector) {
            None => true,
            Some(Entry::Live { revision, .. }) => credential.revision > *revision,
            Some(Entry::Deleted { .. }) => false,
        };
        if newer {
            let written = self.next();
            self.by_verifier
                .insert(*credential.verifier.as_bytes(), credential.selector);
            let previous = self.entries.insert(
                credential.selector,
                Entry::Live {
                    verifier: credential.verifier,
                    facts: Arc::new(CredentialFacts {
                        name: Arc::from(credential.name.as_str()),
                        token_type: credential.token_type,
                        projects: credential.projects.clone(),
                        environment: credential.environment.clone(),
                        expires_at: credential.expires_at,
                    }),
                    revision: credential.revision,
                    written,
                },
            );
            if !matches!(previous, Some(Entry::Live { .. })) {
                self.live += 1;
            }
        }
    }

    /// Recounts live entries and drops index entries of tokens no longer live.
    fn count_live(&mut self) {
        self.live = self
            .entries
            .values()
            .filter(|entry| matches!(entry, Entry::Live { .. }))
            .count();
        let Self {
            entries,
            by_verifier,
            ..
        } = self;
        by_verifier.retain(|_, selector| matches!(entries.get(selector), Some(Entry::Live { .. })));
    }
}

#[derive(Debug, Default)]
pub(crate) struct CredentialView {
    state: RwLock<State>,
}

impl CredentialView {
    /// Where the view stands now. Take it *before* reading a snapshot for
    /// [`CredentialView::reload`].
    pub(crate) fn mark(&self) -> u64 {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .sequence
    }

    /// Merges a full snapshot of storage, read after `mark` was taken. Tokens
    /// in it are applied like any change (newest revision wins); live entries
    /// written before `mark` but missing from it were deleted elsewhere and go;
    /// entries written after `mark` may be newer than the snapshot and stay.
    pub(crate) fn reload(&self, credentials: &[StoredCredential], mark: u64) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let missing = credentials.len().saturating_sub(state.entries.len());
        state.entries.reserve(missing);
        let mut in_snapshot = HashSet::with_capacity(credentials.len());
        for credential in credentials {
            in_snapshot.insert(credential.selector);
            state.apply(credential);
        }
        let previous_mark = state.previous_mark;
        state.entries.retain(|selector, entry| match entry {
            Entry::Live { .. } => in_snapshot.contains(selector) || entry.written() > mark,
            Entry::Deleted { written } => *written > previous_mark,
        });
        state.previous_mark = mark;
        state.count_live();
    }

    /// Applies a committed create or update, unless the view already holds a
    /// newer revision of that token or knows it is deleted.
    pub(crate) fn apply(&self, token: &ApiToken) {
        let credential = StoredCredential::from(token);
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&credential);
    }

    /// The verifier of the live token with `selector`, if the view has one.
    pub(crate) fn verifier_of(&self, selector: Selector) -> Option<Verifier> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.entries.get(&selector) {
            Some(Entry::Live { verifier, .. }) => Some(*verifier),
            _ => None,
        }
    }

    pub(crate) fn remove(&self, selector: Selector) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let written = state.next();
        if let Some(Entry::Live { verifier, .. }) =
            state.entries.insert(selector, Entry::Deleted { written })
        {
            state.live -= 1;
            state.by_verifier.remove(verifier.as_bytes());
        }
    }

    /// Number of live tokens in the view.
    pub(crate) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
    }

    /// Checks a presented credential's key: its embedded selector, or without
    /// one the selector its verifier is indexed under. The selector is not
    /// secret, so the map lookup may take variable time; the verifier
    /// comparison is constant-time.
    pub(crate) fn check(
        &self,
        selector: Option<Selector>,
        verifier: &Verifier,
        now: DateTime<Utc>,
    ) -> Result<(Selector, Arc<CredentialFacts>), Rejection> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let Some(selector) =
            selector.or_else(|| state.by_verifier.get(verifier.as_bytes()).copied())
        else {
            return Err(Rejection::Unknown);
        };
        match state.entries.get(&selector) {
            Some(Entry::Live {
                verifier: stored,
                facts,
                ..
            }) if stored == verifier => {
                if facts.expires_at.is_some_and(|expires_at| expires_at <= now) {
                    Err(Rejection::Expired)
                } else {
                    Ok((selector, Arc::clone(facts)))
                }
            }
            _ => Err(Rejection::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use keywarden_domain::{fixtures, Credential, TokenType};

    fn creds(tokens: &[ApiToken]) -> Vec<StoredCredential> {
        tokens.iter().map(StoredCredential::from).collect()
    }

    fn now() -> DateTime<Utc> {
        fixtures::at(0)
    }

    fn admin(revision: i64, expires_at: Option<DateTime<Utc>>) -> (ApiToken, Credential) {
        let (token, credential) = fixtures::token(5, "admin", TokenType::Admin, &["*"], now());
        (fixtures::stored(&token, revision, expires_at), credential)
    }

    fn check(
        view: &CredentialView,
        credential: &Credential,
    ) -> Result<Arc<CredentialFacts>, Rejection> {
        view.check(credential.selector(), &credential.verifier(), now())
            .map(|(_, facts)| facts)
    }

    #[test]
    fn known_credentials_pass_and_others_do_not() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, None);
        view.reload(&creds(&[token]), 0);
        let facts = check(&view, &credential).unwrap();
        assert_eq!(&*facts.name, "admin");
        assert_eq!(facts.token_type, TokenType::Admin);
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
    fn legacy_credentials_are_found_by_verifier_under_their_random_selector() {
        let view = CredentialView::default();
        let legacy = Credential::new("*:*.an-operator-chosen-secret-of-length");
        let (template, _) = admin(1, None);
        let random = Selector::from_bytes([42; 16]);
        let token = keywarden_domain::NewToken::new(
            template.name().clone(),
            TokenType::Admin,
            keywarden_domain::Projects::All,
            keywarden_domain::EnvironmentScope::All,
            None,
        )
        .unwrap()
        .with_credential(&legacy, random, now())
        .with_revision(1);
        view.reload(&creds(std::slice::from_ref(&token)), view.mark());
        let (found, _) = view
            .check(legacy.selector(), &legacy.verifier(), now())
            .unwrap();
        assert_eq!(found, random);
        assert_eq!(
            check(
                &view,
                &Credential::new("*:*.an-operator-chosen-secret-of-lengtH")
            ),
            Err(Rejection::Unknown)
        );
        view.remove(random);
        assert_eq!(check(&view, &legacy), Err(Rejection::Unknown));
        assert!(view.state.read().unwrap().by_verifier.is_empty());
    }

    #[test]
    fn expiry_is_exclusive_of_the_instant() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, Some(now()));
        view.reload(&creds(&[token]), 0);
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
        view.reload(&creds(std::slice::from_ref(&token)), 0);
        assert_eq!(view.len(), 1);
        view.remove(token.selector());
        assert_eq!(view.len(), 0);
        view.remove(token.selector());
        assert_eq!(view.len(), 0, "removing twice counts once");
        view.apply(&token);
        assert_eq!(check(&view, &credential), Err(Rejection::Unknown));
    }

    #[test]
    fn a_reload_never_undoes_changes_applied_while_it_read() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, None);
        view.reload(&creds(std::slice::from_ref(&token)), view.mark());
        let mark = view.mark();
        // The snapshot is read here, then a local change commits and applies.
        let snapshot = vec![token.clone()];
        let (expired, _) = admin(2, Some(now() - Duration::days(1)));
        view.apply(&expired);
        view.reload(&creds(&snapshot), mark);
        assert_eq!(check(&view, &credential), Err(Rejection::Expired));
    }

    #[test]
    fn a_reload_drops_tokens_deleted_elsewhere_but_keeps_ones_created_meanwhile() {
        let view = CredentialView::default();
        let (gone, gone_credential) = admin(1, None);
        view.reload(&creds(std::slice::from_ref(&gone)), view.mark());
        let mark = view.mark();
        let (fresh, fresh_credential) =
            fixtures::token(8, "fresh", TokenType::Admin, &["*"], now());
        view.apply(&fresh.with_revision(1));
        view.reload(&[], mark);
        assert_eq!(check(&view, &gone_credential), Err(Rejection::Unknown));
        assert!(check(&view, &fresh_credential).is_ok());
    }

    #[test]
    fn tombstones_outlive_one_reload_then_go() {
        let view = CredentialView::default();
        let (token, credential) = admin(1, None);
        view.reload(&creds(std::slice::from_ref(&token)), view.mark());
        view.remove(token.selector());
        view.reload(&[], view.mark());
        view.apply(&token);
        assert_eq!(
            check(&view, &credential),
            Err(Rejection::Unknown),
            "still a tombstone"
        );
        view.reload(&[], view.mark());
        assert_eq!(
            view.state.read().unwrap().entries.len(),
            0,
            "tombstone pruned"
        );
    }
}
