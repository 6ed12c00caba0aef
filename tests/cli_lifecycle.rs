//! `keywarden tokens rotate` and `tokens list --violating-policy` as the
//! operator runs them: on the configured SQLite database, no server needed.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::Path;
use std::process::Command;

/// Runs the binary in `dir` with `vars`; returns (success, stdout, stderr).
fn run(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .current_dir(dir)
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_operator_rotates_any_token_and_lists_those_against_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (ok, stdout, stderr) = run(
        dir,
        &[],
        &[
            "tokens",
            "create",
            "--create-database",
            "--type",
            "admin",
            "--name",
            "ops",
        ],
    );
    assert!(ok, "{stderr}");
    let old = stdout.lines().last().unwrap().to_string();
    let selector_of = |credential: &str| {
        credential
            .split_once(".v2_")
            .map(|(_, rest)| rest[..22].to_string())
            .unwrap()
    };

    let (ok, stdout, stderr) = run(dir, &[], &["tokens", "rotate", &old, "--overlap", "12h"]);
    assert!(ok, "{stderr}");
    let new = stdout.lines().last().unwrap();
    assert!(new.starts_with("*:*.v2_"), "{stdout}");
    assert_ne!(new, old);
    let (ok, listed, _) = run(dir, &[], &["tokens", "list"]);
    assert!(ok);
    assert_eq!(listed.matches(" ops ").count(), 2, "{listed}");

    // One successor per token.
    let (ok, _, stderr) = run(dir, &[], &["tokens", "rotate", &old, "--now"]);
    assert!(!ok);
    assert!(stderr.contains("already rotated"), "{stderr}");
    // --overlap or --now.
    assert!(!run(dir, &[], &["tokens", "rotate", new]).0);

    // The successor never expires: against a maximum lifetime set later.
    let policy = [("KEYWARDEN__TOKENS__MAX_LIFETIME", "1d")];
    let (ok, violating, stderr) = run(dir, &policy, &["tokens", "list", "--violating-policy"]);
    assert!(ok, "{stderr}");
    assert!(violating.contains(&selector_of(new)), "{violating}");
    assert!(!violating.contains(&selector_of(&old)), "{violating}");
    let (ok, _, stderr) = run(
        dir,
        &policy,
        &[
            "tokens",
            "create",
            "--type",
            "backend",
            "--name",
            "x",
            "--expires-in",
            "2d",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("tokens.max_lifetime"), "{stderr}");
}

#[test]
fn webhooks_status_reports_each_endpoint_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let secret = "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY=";
    let webhooks = format!(
        r#"[{{ url = "https://user:pw-in-url@hooks.example/in?key=q", secret = "{secret}" }}]"#
    );
    let vars = [("KEYWARDEN__WEBHOOKS", webhooks.as_str())];
    let (ok, _, stderr) = run(dir, &vars, &["migrate"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(dir, &vars, &["webhooks", "status"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("https://hooks.example/in"), "{stdout}");
    assert!(
        stdout.contains("not registered yet"),
        "no server has run: {stdout}"
    );
    for hidden in ["pw-in-url", "key=q", "whsec_"] {
        assert!(
            !stdout.contains(hidden) && !stderr.contains(hidden),
            "{hidden}: {stdout}{stderr}"
        );
    }
    let bad = [(
        "KEYWARDEN__WEBHOOKS",
        r#"[{ url = "ftp://x", secret = "whsec_x" }]"#,
    )];
    let (ok, _, stderr) = run(dir, &bad, &["webhooks", "status"]);
    assert!(!ok);
    assert!(stderr.contains("webhooks[0].url"), "{stderr}");
}
