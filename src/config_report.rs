//! What `keywarden config check` prints: the effective configuration as TOML,
//! each value followed by the source it came from (the built-in defaults, the
//! overlay file, or the environment variable that set it), secrets redacted.
//! It reads the same sources, in the same order, as `Settings::load`.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::settings::{redact_url, SettingsError, DEFAULTS, INIT_VARIABLES, UNLEASH_NAMES};

/// Where one value came from.
type Origins = HashMap<String, String>;

/// The report for this overlay file and environment.
///
/// # Errors
/// When the overlay file cannot be read or is not TOML.
pub fn effective(
    overlay: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<String, SettingsError> {
    let invalid = |e: String| SettingsError::Invalid(e);
    let mut table: Table = DEFAULTS.parse().map_err(|e| invalid(format!("{e}")))?;
    let mut origins = Origins::new();
    let overlay = overlay
        .map(Path::to_path_buf)
        .or_else(|| env.get("KEYWARDEN_CONFIG").map(PathBuf::from));
    if let Some(path) = overlay {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let file: Table = text
            .parse()
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let source = format!("file {}", path.display());
        for (section, value) in file {
            match (table.get_mut(&section), value) {
                (Some(Value::Table(current)), Value::Table(keys)) => {
                    for (key, value) in keys {
                        origins.insert(format!("{section}.{key}"), source.clone());
                        current.insert(key, value);
                    }
                }
                (_, value) => {
                    origins.insert(section.clone(), source.clone());
                    table.insert(section, value);
                }
            }
        }
    }
    // Unleash's names first, so KEYWARDEN__ variables win as they do on load.
    let mut variables: Vec<(String, String, String)> = UNLEASH_NAMES
        .iter()
        .filter_map(|(unleash, ours)| {
            env.get(*unleash)
                .map(|v| (unleash.to_string(), ours.to_string(), v.clone()))
        })
        .collect();
    let mut ours: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with("KEYWARDEN__"))
        .map(|(name, value)| (name.clone(), name.clone(), value.clone()))
        .collect();
    ours.sort();
    variables.extend(ours);
    for (variable, name, value) in variables {
        let path: Vec<String> = name["KEYWARDEN__".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if let [section, key] = &path[..] {
            if let Some(Value::Table(current)) = table.get_mut(section) {
                current.insert(key.clone(), scalar(&value));
                origins.insert(format!("{section}.{key}"), format!("env {variable}"));
            }
        }
    }
    if let Some(Value::Table(bootstrap)) = table.get_mut("bootstrap") {
        for (variable, token_type, _) in INIT_VARIABLES {
            if let Some(value) = env.get(variable) {
                let key = format!("{}_tokens", token_type.as_str());
                let count = value.split(',').filter(|s| !s.trim().is_empty()).count();
                bootstrap.insert(key.clone(), Value::Array(vec![secret(); count]));
                origins.insert(format!("bootstrap.{key}"), format!("env {variable}"));
            }
        }
    }
    redact(&mut table);
    render(&table, &origins)
}

/// An environment value read as TOML would read it (`8080`, `true`), else text.
fn scalar(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, Value::Table(_) | Value::Array(_)))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

fn secret() -> Value {
    Value::String("<redacted>".into())
}

fn redact(table: &mut Table) {
    if let Some(Value::Table(database)) = table.get_mut("database") {
        if let Some(Value::String(url)) = database.get_mut("url") {
            *url = redact_url(url);
        }
    }
    if let Some(Value::Array(webhooks)) = table.get_mut("webhooks") {
        for webhook in webhooks.iter_mut() {
            if let Value::Table(webhook) = webhook {
                if let Some(secret_value) = webhook.get_mut("secret") {
                    *secret_value = secret();
                }
                if let Some(Value::String(url)) = webhook.get_mut("url") {
                    *url = keywarden_application::redact_endpoint(url);
                }
            }
        }
    }
    if let Some(Value::Table(bootstrap)) = table.get_mut("bootstrap") {
        for (key, value) in bootstrap.iter_mut() {
            if let (true, Value::Array(items)) = (key.ends_with("_tokens"), value) {
                for item in items.iter_mut() {
                    *item = secret();
                }
            }
        }
    }
}

fn render(table: &Table, origins: &Origins) -> Result<String, SettingsError> {
    let origin = |path: &str| {
        origins
            .get(path)
            .map_or("default".to_string(), String::clone)
    };
    let encode =
        |value: &Value| toml::to_string(value).map_err(|e| SettingsError::Invalid(e.to_string()));
    let mut out = String::new();
    for (section, value) in table {
        match value {
            Value::Table(keys) => {
                let _ = writeln!(out, "[{section}]");
                for (key, value) in keys {
                    let mut one = Table::new();
                    one.insert(key.clone(), value.clone());
                    let line = encode(&Value::Table(one))?;
                    let _ = writeln!(
                        out,
                        "{}  # {}",
                        line.trim_end(),
                        origin(&format!("{section}.{key}"))
                    );
                }
            }
            other => {
                let _ = writeln!(out, "# {section}: {}", origin(section));
                let mut one = Table::new();
                one.insert(section.clone(), other.clone());
                out.push_str(&encode(&Value::Table(one))?);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_names_its_source_and_secrets_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overlay.toml");
        std::fs::write(
            &file,
            "[server]\nworkers = 3\n\n[[projects]]\nid = \"p\"\nname = \"P\"\n\n\
             [[webhooks]]\nurl = \"https://u:pw-in-url@hooks.example/in?key=q\"\n\
             secret = \"whsec_c2VjcmV0LXdlYmhvb2sta2V5LWJ5dGVzLTEyMzQ1Ng==\"\n",
        )
        .unwrap();
        let env: HashMap<String, String> = [
            ("HTTP_PORT", "8080"),
            ("DATABASE_URL", "postgres://kw:hunter2@db/kw"),
            ("INIT_ADMIN_API_TOKENS", "*:*.very-secret-bootstrap-token"),
            ("KEYWARDEN__SERVER__HOST", "127.0.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let report = effective(Some(&file), &env).unwrap();
        let overlay = format!("# file {}", file.display());
        for line in [
            "port = 8080  # env HTTP_PORT".to_string(),
            "host = \"127.0.0.1\"  # env KEYWARDEN__SERVER__HOST".to_string(),
            format!("workers = 3  {overlay}"),
            "shutdown_timeout_secs = 10  # default".to_string(),
            "url = \"postgres://kw:<redacted>@db/kw\"  # env DATABASE_URL".to_string(),
            "admin_tokens = [\"<redacted>\"]  # env INIT_ADMIN_API_TOKENS".to_string(),
            format!("# projects: file {}", file.display()),
        ] {
            assert!(report.contains(&line), "{line}\n{report}");
        }
        assert!(!report.contains("hunter2") && !report.contains("very-secret"));
        assert!(
            !report.contains("whsec_") && !report.contains("pw-in-url"),
            "{report}"
        );
        assert!(!report.contains("key=q"), "{report}");
        report.parse::<Table>().expect("the report is TOML");
    }
}
