//! Bytes per token the credential view holds once loaded: loads N synthetic
//! credentials (argument, default 1,000,000) through `start` and a full
//! reload over a mocked repository, counting what the allocator holds before
//! and after the load (the snapshot itself is freed by then).
//!
//! `cargo run -p keywarden-application --features mocks --example view_memory -- 1000000`
#![expect(clippy::unwrap_used, reason = "a measurement: fail loudly")]
#![expect(unsafe_code, reason = "counting allocations takes a global allocator")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keywarden_application::{
    start, Adapters, Clock, MockApiTokenRepository, SecretGenerator, ServiceSettings,
    StoredCredential,
};
use keywarden_domain::{
    EnvironmentName, EnvironmentScope, Projects, SecretMaterial, Selector, TokenType, Verifier,
};

/// The system allocator, keeping count of the bytes currently allocated.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Now;

impl Clock for Now {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Start-up mints a first-run credential before it knows whether it needs one.
struct FixedSecrets;

impl SecretGenerator for FixedSecrets {
    fn generate(&self) -> Result<SecretMaterial, keywarden_application::BoxError> {
        Ok(SecretMaterial {
            selector: [0xff; 16],
            random: [0xff; 32],
        })
    }
}

/// A backend token for `development`, all projects: the common shape.
fn credential(i: u64) -> StoredCredential {
    let mut selector = [0u8; 16];
    selector[..8].copy_from_slice(&i.to_le_bytes());
    let mut verifier = [7u8; 32];
    verifier[..8].copy_from_slice(&i.to_le_bytes());
    StoredCredential {
        selector: Selector::from_bytes(selector),
        verifier: Verifier::from_slice(&verifier).unwrap(),
        name: format!("service-{i}"),
        token_type: TokenType::Backend,
        projects: Projects::All,
        environment: EnvironmentScope::Named(EnvironmentName::parse("development").unwrap()),
        expires_at: None,
        revision: 1,
    }
}

fn main() {
    let size: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |arg| arg.parse().unwrap());
    let empty = HELD.load(Ordering::Relaxed);
    let snapshot: Vec<StoredCredential> = (0..size).map(credential).collect();
    let snapshot_bytes = HELD.load(Ordering::Relaxed) - empty;
    let mut repository = MockApiTokenRepository::new();
    repository.expect_sync_catalog().returning(|_, _, _| Ok(()));
    repository.expect_projects().returning(|| Ok(Vec::new()));
    repository
        .expect_environments()
        .returning(|| Ok(Vec::new()));
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    repository
        .expect_credentials()
        .return_once(move || Ok(snapshot));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = runtime
        .block_on(start(
            Adapters {
                repository: Arc::new(repository),
                clock: Arc::new(Now),
                secrets: Arc::new(FixedSecrets),
            },
            ServiceSettings {
                token_limit: u32::MAX,
                projects: Vec::new(),
                environments: Vec::new(),
                lifetime: Default::default(),
            },
            Vec::new(),
        ))
        .unwrap();
    // The snapshot is moved into the load and freed by it.
    let before = HELD.load(Ordering::Relaxed) - snapshot_bytes;
    runtime
        .block_on(started.credentials.refresh_view())
        .unwrap();
    let held = HELD.load(Ordering::Relaxed) - before;
    assert_eq!(started.credentials.credential_count() as u64, size);
    println!(
        "{size} tokens: {held} bytes held by the view, {:.1} bytes per token",
        held as f64 / size as f64
    );
}
