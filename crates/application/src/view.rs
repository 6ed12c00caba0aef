//! The in-memory view of every credential: what authentication reads instead of
//! the database. It is complete (every stored token is in it), so an unknown
//! credential is rejected from memory without a database round trip, and it is
//! kept exact by applying every committed change, newest revision wins.
//! Credentials that embed no selector (operator-chosen, not in v2 format) are
//! found through an index from verifier to record, so they cost one lookup
//! more and never a scan.
//!
//! It is laid out for a million tokens in ~120 bytes each: one dense vector
//! of fixed-size records (no allocation per token), token names in one shared
//! string, the scope (projects, environment) interned because thousands of
//! tokens share a handful of them, and two hash indexes holding only a `u32`
//! record number each, rather than maps that repeat the 16- or 32-byte key
//! beside a value. A check builds its answer from the record: one small
//! allocation for the name, against the SHA-256 it has just computed.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use hashbrown::HashTable;
use keywarden_domain::{ApiToken, Selector, TokenType, Verifier};

use crate::verify::{CredentialFacts, TokenScope};
use crate::StoredCredential;

/// One token, live or deleted. Deleted tokens stay as tombstones so a change
/// that committed before the delete but is applied after it cannot bring the
/// token back; a tombstone's other fields mean nothing.
#[derive(Debug)]
struct Record {
    selector: Selector,
    verifier: Verifier,
    revision: i64,
    /// When this record was last written, in the view's own sequence.
    written: u64,
    expires_at: Option<DateTime<Utc>>,
    /// The name: `names[name_at..name_at + name_len]`.
    name_at: u32,
    name_len: u16,
    /// Index into `State::scopes`.
    scope: u32,
    token_type: TokenType,
    /// `LIVE` and `IN_SNAPSHOT`: one byte, so a record stays 88 bytes.
    flags: u8,
}

/// The token is live (not a tombstone).
const LIVE: u8 = 1;
/// Seen in the snapshot the running reload merges.
const IN_SNAPSHOT: u8 = 2;

impl Record {
    fn is_live(&self) -> bool {
        self.flags & LIVE != 0
    }

    fn name<'a>(&self, names: &'a str) -> &'a str {
        let start = self.name_at as usize;
        &names[start..start + usize::from(self.name_len)]
    }
}

/// Why a credential was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unknown,
    Expired,
}

/// The parts of a credential the view keeps.
struct Incoming<'a> {
    selector: Selector,
    verifier: Verifier,
    name: &'a str,
    token_type: TokenType,
    projects: &'a keywarden_domain::Projects,
    environment: &'a keywarden_domain::EnvironmentScope,
    expires_at: Option<DateTime<Utc>>,
    revision: i64,
}

impl<'a> From<&'a StoredCredential> for Incoming<'a> {
    fn from(credential: &'a StoredCredential) -> Self {
        Self {
            selector: credential.selector,
            verifier: credential.verifier,
            name: &credential.name,
            token_type: credential.token_type,
            projects: &credential.projects,
            environment: &credential.environment,
            expires_at: credential.expires_at,
            revision: credential.revision,
        }
    }
}

impl<'a> From<&'a ApiToken> for Incoming<'a> {
    fn from(token: &'a ApiToken) -> Self {
        Self {
            selector: token.selector(),
            verifier: *token.verifier(),
            name: token.name().as_str(),
            token_type: token.token_type(),
            projects: token.projects(),
            environment: token.environment(),
            expires_at: token.expires_at(),
            revision: token.revision(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    records: Vec<Record>,
    /// Record numbers by selector: every record, live or tombstone.
    by_selector: HashTable<u32>,
    /// Record numbers by verifier: how a credential that embeds no selector
    /// finds its token. Live records only; one per verifier.
    by_verifier: HashTable<u32>,
    /// Keyed per process: selectors of bootstrap tokens are chosen by operators.
    hasher: RandomState,
    /// Every live record's name, back to back.
    names: String,
    /// Bytes of `names` no live record uses any more.
    dead_name_bytes: usize,
    /// Every distinct scope a token had since the view was created.
    scopes: Vec<Arc<TokenScope>>,
    /// Indexes into `scopes`, by the scope's hash.
    scope_index: HashTable<u32>,
    /// Grows with every write to the view.
    sequence: u64,
    /// The mark of the previous reload: tombstones older than it have outlived
    /// any change that could still have been in flight, and can go.
    previous_mark: u64,
    /// Number of live records, kept so reading it costs nothing.
    live: usize,
}

/// Names longer than this cannot be stored; `TokenName` allows 255 characters,
/// at most 1,020 bytes.
const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// Dead name bytes tolerated before the names are rewritten without them.
const NAME_GARBAGE_SLACK: usize = 64 * 1024;

fn number(at: usize) -> u32 {
    // A view of four billion records would need 350 GB first.
    u32::try_from(at).unwrap_or_else(|_| panic!("more than 2^32 credentials in the view"))
}

impl State {
    fn next(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    fn selector_hash(&self, selector: Selector) -> u64 {
        self.hasher.hash_one(selector)
    }

    fn verifier_hash(&self, verifier: &Verifier) -> u64 {
        self.hasher.hash_one(verifier.as_bytes())
    }

    /// The record number of `selector`, live or tombstone.
    fn find(&self, selector: Selector) -> Option<usize> {
        let records = &self.records;
        self.by_selector
            .find(self.selector_hash(selector), |&at| {
                records[at as usize].selector == selector
            })
            .map(|&at| at as usize)
    }

    /// The number of this scope in `scopes`, adding it the first time.
    fn scope_of(
        &mut self,
        projects: &keywarden_domain::Projects,
        environment: &keywarden_domain::EnvironmentScope,
    ) -> u32 {
        let hash = self.hasher.hash_one((projects, environment));
        let scopes = &self.scopes;
        if let Some(&at) = self.scope_index.find(hash, |&at| {
            let scope = &scopes[at as usize];
            scope.projects == *projects && scope.environment == *environment
        }) {
            return at;
        }
        let at = number(self.scopes.len());
        self.scopes.push(Arc::new(TokenScope {
            projects: projects.clone(),
            environment: environment.clone(),
        }));
        let (hasher, scopes) = (&self.hasher, &self.scopes);
        self.scope_index.insert_unique(hash, at, |&at| {
            let scope = &scopes[at as usize];
            hasher.hash_one((&scope.projects, &scope.environment))
        });
        at
    }

    /// Appends a name to `names`: where it starts and its length.
    fn push_name(&mut self, name: &str) -> (u32, u16) {
        let mut end = name.len().min(MAX_NAME_BYTES);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let name = &name[..end];
        if u32::try_from(self.names.len() + name.len()).is_err() {
            self.compact_names();
        }
        let at = u32::try_from(self.names.len())
            .unwrap_or_else(|_| panic!("more than 4 GiB of token names in the view"));
        self.names.push_str(name);
        (at, u16::try_from(name.len()).unwrap_or(u16::MAX))
    }

    /// Rewrites `names` without the bytes of deleted or renamed tokens.
    fn compact_names(&mut self) {
        let mut names = String::with_capacity(self.names.len() - self.dead_name_bytes);
        for record in &mut self.records {
            if record.is_live() {
                let at = names.len();
                names.push_str(record.name(&self.names));
                record.name_at = number(at);
            }
        }
        self.names = names;
        self.dead_name_bytes = 0;
    }

    fn forget_name(&mut self, at: usize) {
        let record = &mut self.records[at];
        self.dead_name_bytes += usize::from(record.name_len);
        record.name_len = 0;
        if self.dead_name_bytes > NAME_GARBAGE_SLACK.max(self.names.len() / 2) {
            self.compact_names();
        }
    }

    /// Makes record `at` the one its verifier finds. Like a map insert: a
    /// record indexed under the same verifier before is no longer found by it.
    fn index_verifier(&mut self, at: usize) {
        let verifier = self.records[at].verifier;
        let hash = self.verifier_hash(&verifier);
        let records = &self.records;
        if let Some(slot) = self
            .by_verifier
            .find_mut(hash, |&other| records[other as usize].verifier == verifier)
        {
            *slot = number(at);
            return;
        }
        let hasher = &self.hasher;
        self.by_verifier.insert_unique(hash, number(at), |&other| {
            hasher.hash_one(records[other as usize].verifier.as_bytes())
        });
    }

    /// Takes record `at` out of the verifier index, if it is the one there.
    fn unindex_verifier(&mut self, at: usize) {
        let hash = self.verifier_hash(&self.records[at].verifier);
        if let Ok(entry) = self
            .by_verifier
            .find_entry(hash, |&other| other as usize == at)
        {
            entry.remove();
        }
    }

    fn apply(&mut self, incoming: &Incoming<'_>, from_snapshot: bool) {
        let Some(at) = self.find(incoming.selector) else {
            let written = self.next();
            let scope = self.scope_of(incoming.projects, incoming.environment);
            let (name_at, name_len) = self.push_name(incoming.name);
            let at = self.records.len();
            self.records.push(Record {
                selector: incoming.selector,
                verifier: incoming.verifier,
                revision: incoming.revision,
                written,
                expires_at: incoming.expires_at,
                name_at,
                name_len,
                scope,
                token_type: incoming.token_type,
                flags: LIVE | if from_snapshot { IN_SNAPSHOT } else { 0 },
            });
            let hash = self.selector_hash(incoming.selector);
            let (hasher, records) = (&self.hasher, &self.records);
            self.by_selector.insert_unique(hash, number(at), |&other| {
                hasher.hash_one(records[other as usize].selector)
            });
            self.index_verifier(at);
            self.live += 1;
            return;
        };
        let record = &mut self.records[at];
        if from_snapshot {
            record.flags |= IN_SNAPSHOT;
        }
        // A tombstone stays; an older or equal revision changes nothing.
        if !record.is_live() || incoming.revision <= record.revision {
            return;
        }
        let written = self.next();
        if self.records[at].verifier != incoming.verifier {
            self.unindex_verifier(at);
            self.records[at].verifier = incoming.verifier;
            self.index_verifier(at);
        }
        if self.records[at].name(&self.names) != incoming.name {
            self.forget_name(at);
            let (name_at, name_len) = self.push_name(incoming.name);
            let record = &mut self.records[at];
            record.name_at = name_at;
            record.name_len = name_len;
        }
        let scope = self.scope_of(incoming.projects, incoming.environment);
        let record = &mut self.records[at];
        record.revision = incoming.revision;
        record.written = written;
        record.expires_at = incoming.expires_at;
        record.scope = scope;
        record.token_type = incoming.token_type;
    }

    fn remove(&mut self, selector: Selector) {
        let written = self.next();
        match self.find(selector) {
            Some(at) => {
                if self.records[at].is_live() {
                    self.unindex_verifier(at);
                    self.forget_name(at);
                    self.live -= 1;
                }
                let record = &mut self.records[at];
                record.flags &= !LIVE;
                record.written = written;
            }
            None => {
                let at = self.records.len();
                self.records.push(Record {
                    selector,
                    verifier: Verifier::from_bytes([0; 32]),
                    revision: 0,
                    written,
                    expires_at: None,
                    name_at: 0,
                    name_len: 0,
                    scope: 0,
                    token_type: TokenType::Admin,
                    flags: 0,
                });
                let hash = self.selector_hash(selector);
                let (hasher, records) = (&self.hasher, &self.records);
                self.by_selector.insert_unique(hash, number(at), |&other| {
                    hasher.hash_one(records[other as usize].selector)
                });
            }
        }
    }

    /// Drops record `at` for good, moving the last record into its place.
    fn swap_remove(&mut self, at: usize) {
        let hash = self.selector_hash(self.records[at].selector);
        if let Ok(entry) = self
            .by_selector
            .find_entry(hash, |&other| other as usize == at)
        {
            entry.remove();
        }
        if self.records[at].is_live() {
            self.unindex_verifier(at);
            self.forget_name(at);
            self.live -= 1;
        }
        let last = self.records.len() - 1;
        if at != last {
            let moved = &self.records[last];
            let hash = self.selector_hash(moved.selector);
            if let Some(slot) = self
                .by_selector
                .find_mut(hash, |&other| other as usize == last)
            {
                *slot = number(at);
            }
            if moved.is_live() {
                let hash = self.verifier_hash(&moved.verifier);
                if let Some(slot) = self
                    .by_verifier
                    .find_mut(hash, |&other| other as usize == last)
                {
                    *slot = number(at);
                }
            }
        }
        self.records.swap_remove(at);
    }

    fn reserve(&mut self, additional: usize) {
        self.records.reserve_exact(additional);
        let (hasher, records) = (&self.hasher, &self.records);
        self.by_selector.reserve(additional, |&at| {
            hasher.hash_one(records[at as usize].selector)
        });
        self.by_verifier.reserve(additional, |&at| {
            hasher.hash_one(records[at as usize].verifier.as_bytes())
        });
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
        let state = &mut *state;
        state.reserve(credentials.len().saturating_sub(state.records.len()));
        for credential in credentials {
            state.apply(&Incoming::from(credential), true);
        }
        let previous_mark = state.previous_mark;
        let mut at = 0;
        while at < state.records.len() {
            let record = &mut state.records[at];
            let keep = if record.is_live() {
                record.flags & IN_SNAPSHOT != 0 || record.written > mark
            } else {
                record.written > previous_mark
            };
            record.flags &= !IN_SNAPSHOT;
            if keep {
                at += 1;
            } else {
                state.swap_remove(at);
            }
        }
        state.previous_mark = mark;
        state.live = state
            .records
            .iter()
            .filter(|record| record.is_live())
            .count();
        if state.dead_name_bytes > 0 {
            state.compact_names();
        }
        // Give back what a shrinking table or the growth of the first load
        // left unused, but keep some room so the next create does not
        // reallocate at once.
        let len = state.records.len();
        if state.records.capacity() > len + len / 8 {
            state.records.shrink_to(len + len / 16);
        }
        state
            .names
            .shrink_to(state.names.len() + state.names.len() / 16);
    }

    /// Applies a committed create or update, unless the view already holds a
    /// newer revision of that token or knows it is deleted.
    pub(crate) fn apply(&self, token: &ApiToken) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&Incoming::from(token), false);
    }

    /// The verifier of the live token with `selector`, if the view has one.
    pub(crate) fn verifier_of(&self, selector: Selector) -> Option<Verifier> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let record = &state.records[state.find(selector)?];
        record.is_live().then_some(record.verifier)
    }

    pub(crate) fn remove(&self, selector: Selector) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(selector);
    }

    /// Number of live tokens in the view.
    pub(crate) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
    }

    /// Whether a live admin token that has not expired by `now` exists: one
    /// pass over the records, for the start-up report.
    pub(crate) fn has_usable_admin(&self, now: DateTime<Utc>) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.records.iter().any(|record| {
            record.is_live()
                && record.token_type.is_admin()
                && record.expires_at.is_none_or(|at| at > now)
        })
    }

    /// Checks a presented credential's key: its embedded selector, or without
    /// one the record its verifier is indexed under. The selector is not
    /// secret, so the lookup may take variable time; the verifier comparison
    /// is constant-time.
    pub(crate) fn check(
        &self,
        selector: Option<Selector>,
        verifier: &Verifier,
        now: DateTime<Utc>,
    ) -> Result<(Selector, Arc<CredentialFacts>), Rejection> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let found = match selector {
            Some(selector) => state.find(selector),
            None => state
                .by_verifier
                .find(state.verifier_hash(verifier), |&at| {
                    state.records[at as usize].verifier == *verifier
                })
                .map(|&at| at as usize),
        };
        let Some(record) = found.map(|at| &state.records[at]) else {
            return Err(Rejection::Unknown);
        };
        if !record.is_live() || record.verifier != *verifier {
            return Err(Rejection::Unknown);
        }
        if record
            .expires_at
            .is_some_and(|expires_at| expires_at <= now)
        {
            return Err(Rejection::Expired);
        }
        Ok((
            record.selector,
            Arc::new(CredentialFacts {
                name: Arc::from(record.name(&state.names)),
                token_type: record.token_type,
                scope: Arc::clone(&state.scopes[record.scope as usize]),
                expires_at: record.expires_at,
            }),
        ))
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
        assert_eq!(view.state.read().unwrap().by_verifier.len(), 0);
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
            view.state.read().unwrap().records.len(),
            0,
            "tombstone pruned"
        );
    }

    /// Token `i` of a larger set: a v2 credential, or for odd `i` with
    /// `legacy` an operator-chosen one; its name is `name_len` bytes long.
    fn numbered(i: u16, legacy: bool, name_len: usize) -> (ApiToken, Credential) {
        let [hi, lo] = i.to_be_bytes();
        let mut selector = [7; 16];
        selector[..2].copy_from_slice(&[hi, lo]);
        let mut random = [9; 32];
        random[..2].copy_from_slice(&[hi, lo]);
        let name = format!("{i:05}{}", "n".repeat(name_len.saturating_sub(5)));
        let new = keywarden_domain::NewToken::new(
            keywarden_domain::TokenName::parse(&name).unwrap(),
            TokenType::Backend,
            keywarden_domain::Projects::All,
            keywarden_domain::EnvironmentScope::Named(
                keywarden_domain::EnvironmentName::parse("development").unwrap(),
            ),
            None,
        )
        .unwrap();
        let (token, credential) = if legacy && i % 2 == 1 {
            let credential = Credential::new(format!("*:development.operator-chosen-{i:05}"));
            let token = new.with_credential(&credential, Selector::from_bytes(selector), now());
            (token, credential)
        } else {
            new.issue(
                &keywarden_domain::SecretMaterial { selector, random },
                now(),
            )
        };
        (token.with_revision(1), credential)
    }

    #[test]
    fn a_record_stays_small() {
        assert!(
            std::mem::size_of::<Record>() <= 88,
            "{}",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn records_that_move_when_others_go_stay_findable() {
        let view = CredentialView::default();
        let all: Vec<_> = (0..200).map(|i| numbered(i, true, 12)).collect();
        let tokens: Vec<ApiToken> = all.iter().map(|(token, _)| token.clone()).collect();
        view.reload(&creds(&tokens), view.mark());
        for (token, _) in all.iter().step_by(3) {
            view.remove(token.selector());
        }
        // Deleted elsewhere: every fifth token is missing from the snapshot.
        let kept: Vec<ApiToken> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 != 0)
            .map(|(_, token)| token.clone())
            .collect();
        view.reload(&creds(&kept), view.mark());
        view.reload(&creds(&kept), view.mark());
        for (i, (token, credential)) in all.iter().enumerate() {
            let found = view.check(credential.selector(), &credential.verifier(), now());
            if i % 3 == 0 || i % 5 == 0 {
                assert_eq!(found.map(|_| ()), Err(Rejection::Unknown), "token {i}");
            } else {
                let (selector, facts) = found.unwrap_or_else(|e| panic!("token {i}: {e:?}"));
                assert_eq!(selector, token.selector());
                assert_eq!(&*facts.name, token.name().as_str());
            }
        }
        let expected = (0..200).filter(|i| i % 3 != 0 && i % 5 != 0).count();
        assert_eq!(view.len(), expected);
        let state = view.state.read().unwrap();
        assert_eq!(state.records.len(), expected, "the tombstones went too");
        assert_eq!(state.by_selector.len(), expected);
        assert_eq!(state.dead_name_bytes, 0);
    }

    #[test]
    fn names_stay_right_when_deleted_ones_are_compacted_away() {
        let view = CredentialView::default();
        let all: Vec<_> = (0..1000).map(|i| numbered(i, false, 200)).collect();
        for (token, _) in &all {
            view.apply(token);
        }
        for (token, _) in all.iter().take(900) {
            view.remove(token.selector());
        }
        assert!(
            view.state.read().unwrap().names.len() < 200 * 1000 / 2,
            "compacted while deleting"
        );
        for (token, credential) in all.iter().skip(900) {
            let facts = check(&view, credential).unwrap();
            assert_eq!(&*facts.name, token.name().as_str());
        }
    }

    #[test]
    fn a_renamed_or_rescoped_revision_is_what_a_check_reports() {
        let view = CredentialView::default();
        let (token, credential) = numbered(1, false, 10);
        view.apply(&token);
        let renamed = ApiToken::restore(
            token.selector(),
            *token.verifier(),
            keywarden_domain::TokenName::parse("renamed").unwrap(),
            TokenType::Frontend,
            keywarden_domain::Projects::from_ids(["web"]).unwrap(),
            keywarden_domain::EnvironmentScope::Named(
                keywarden_domain::EnvironmentName::parse("production").unwrap(),
            ),
            None,
            token.created_at(),
            None,
            2,
        )
        .unwrap();
        view.apply(&renamed);
        let facts = check(&view, &credential).unwrap();
        assert_eq!(&*facts.name, "renamed");
        assert_eq!(facts.token_type, TokenType::Frontend);
        assert_eq!(facts.projects(), renamed.projects());
        assert_eq!(facts.environment(), renamed.environment());
    }

    #[test]
    fn tokens_with_the_same_scope_share_one() {
        let view = CredentialView::default();
        let (one, first) = numbered(1, false, 10);
        let (two, second) = numbered(2, false, 10);
        view.reload(&creds(&[one, two]), view.mark());
        let (a, b) = (
            check(&view, &first).unwrap(),
            check(&view, &second).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.scope, &b.scope));
        assert_eq!(view.state.read().unwrap().scopes.len(), 1);
    }

    #[test]
    fn a_legacy_credential_reused_by_a_new_token_finds_the_newest() {
        let view = CredentialView::default();
        let (old, credential) = numbered(1, true, 10);
        view.apply(&old);
        // The same operator-chosen credential under another random selector,
        // as after the old token was deleted elsewhere and bootstrapped again.
        let again = keywarden_domain::NewToken::new(
            old.name().clone(),
            TokenType::Backend,
            keywarden_domain::Projects::All,
            old.environment().clone(),
            None,
        )
        .unwrap()
        .with_credential(&credential, Selector::from_bytes([99; 16]), now())
        .with_revision(1);
        view.apply(&again);
        let (found, _) = view.check(None, &credential.verifier(), now()).unwrap();
        assert_eq!(found, Selector::from_bytes([99; 16]));
        view.remove(old.selector());
        let (found, _) = view.check(None, &credential.verifier(), now()).unwrap();
        assert_eq!(
            found,
            Selector::from_bytes([99; 16]),
            "the newer one stays indexed"
        );
    }
}
