//! Micro-benchmarks of what every authenticated request pays in the domain:
//! hashing the presented credential (SHA-256), finding its selector, and the
//! constant-time comparison of two verifiers.
//!
//! Run: `cargo bench -p keywarden-domain --bench credentials`
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark set-up that fails should stop the run"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keywarden_domain::{
    Credential, EnvironmentName, EnvironmentScope, Projects, SecretMaterial, TokenRef,
};

/// A v2 credential as keywarden issues them: `*:development.v2_<22>_<43>`.
fn v2_credential(seed: u8) -> Credential {
    let environment = EnvironmentScope::Named(EnvironmentName::parse("development").unwrap());
    Credential::generate(
        &Projects::All,
        &environment,
        &SecretMaterial {
            selector: [seed; 16],
            random: [seed.wrapping_add(1); 32],
        },
    )
}

fn credentials(c: &mut Criterion) {
    let v2 = v2_credential(7);
    let v2_text = v2.expose_secret().to_string();
    // Operator-chosen bootstrap credentials are not v2: their selector is
    // derived from the verifier (a second SHA-256).
    let legacy_text = "*:*.bench-admin-secret".to_string();

    let mut group = c.benchmark_group("credential");
    group.bench_function("verifier/v2 (SHA-256 of 91 bytes)", |b| {
        b.iter(|| Credential::new(black_box(v2_text.as_str())).verifier());
    });
    group.bench_function("selector/v2 (parse + base64 decode)", |b| {
        b.iter(|| Credential::new(black_box(v2_text.as_str())).selector());
    });
    group.bench_function("selector/legacy (two SHA-256)", |b| {
        b.iter(|| Credential::new(black_box(legacy_text.as_str())).selector());
    });
    group.bench_function("lookup key/v2 (selector + verifier)", |b| {
        b.iter(|| {
            let credential = Credential::new(black_box(v2_text.as_str()));
            (credential.selector(), credential.verifier())
        });
    });
    group.bench_function("lookup key/legacy (selector + verifier)", |b| {
        b.iter(|| {
            let credential = Credential::new(black_box(legacy_text.as_str()));
            (credential.selector(), credential.verifier())
        });
    });
    group.finish();

    let stored = v2.verifier();
    let same = Credential::new(v2_text.clone()).verifier();
    let other = v2_credential(8).verifier();
    let mut group = c.benchmark_group("verifier");
    group.bench_function("ct_eq/equal", |b| {
        b.iter(|| black_box(&stored) == black_box(&same));
    });
    group.bench_function("ct_eq/different", |b| {
        b.iter(|| black_box(&stored) == black_box(&other));
    });
    group.finish();

    let selector_text = v2.selector().to_string();
    let mut group = c.benchmark_group("token_ref");
    group.bench_function("parse/selector", |b| {
        b.iter(|| TokenRef::parse(black_box(selector_text.as_str())));
    });
    group.bench_function("parse/full credential", |b| {
        b.iter(|| TokenRef::parse(black_box(v2_text.as_str())));
    });
    group.finish();
}

criterion_group!(benches, credentials);
criterion_main!(benches);
