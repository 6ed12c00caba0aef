//! How audit events are stored: the token facts in `events.data` and
//! `events.pre_data` are JSON in a format this crate owns, so neither the
//! domain nor the HTTP body can change what is already written. Each row
//! records its format (`events.format`); a new format gets a new number and a
//! reader beside the old ones, and rows written before it keep reading back.

use keywarden_application::RepositoryError;
use keywarden_domain::{
    format_millis, parse_offset_date_time, EnvironmentName, EnvironmentScope, Projects, Selector,
    TokenFacts, TokenName, TokenType,
};
use serde::{Deserialize, Serialize};

/// The format new rows are written in.
pub(crate) const CURRENT_FORMAT: i32 = 1;

/// Format 1: the token exactly as the Admin API showed it when events were
/// first stored (so every database written before formats existed is format
/// 1). `secret` is the selector; `project` and `alias`/`secure` are derived or
/// fixed and ignored on reading.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenJsonV1 {
    secret: String,
    token_name: String,
    #[serde(rename = "type")]
    token_type: String,
    project: String,
    projects: Vec<String>,
    environment: String,
    expires_at: Option<String>,
    created_at: String,
    seen_at: Option<String>,
    alias: Option<String>,
    secure: bool,
    /// Only on the created event of a rotation's successor: absent otherwise,
    /// so rows without it are byte for byte what format 1 always was, and
    /// older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated_from: Option<String>,
    /// Only on `api-token-expiring` events: the threshold reached. Absent
    /// otherwise, as `rotated_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<String>,
}

impl From<&TokenFacts> for TokenJsonV1 {
    fn from(facts: &TokenFacts) -> Self {
        Self {
            secret: facts.selector.to_string(),
            token_name: facts.name.as_str().to_string(),
            token_type: facts.token_type.as_str().to_string(),
            project: facts.projects.joined(),
            projects: facts.projects.ids(),
            environment: facts.environment.as_str().to_string(),
            expires_at: facts.expires_at.as_ref().map(format_millis),
            created_at: format_millis(&facts.created_at),
            seen_at: facts.seen_at.as_ref().map(format_millis),
            alias: None,
            secure: true,
            rotated_from: None,
            threshold: None,
        }
    }
}

impl TryFrom<TokenJsonV1> for TokenFacts {
    type Error = String;

    fn try_from(json: TokenJsonV1) -> Result<Self, String> {
        let instant = |text: &str| {
            parse_offset_date_time(text).ok_or_else(|| format!("bad date-time {text:?}"))
        };
        let optional = |text: &Option<String>| text.as_deref().map(instant).transpose();
        Ok(Self {
            selector: Selector::parse(&json.secret)
                .ok_or_else(|| format!("bad selector {:?}", json.secret))?,
            name: TokenName::parse(&json.token_name).map_err(|e| e.to_string())?,
            token_type: TokenType::parse(&json.token_type).map_err(|e| e.to_string())?,
            projects: Projects::from_ids(&json.projects).map_err(|e| e.to_string())?,
            environment: match json.environment.as_str() {
                "*" => EnvironmentScope::All,
                name => EnvironmentScope::Named(
                    EnvironmentName::parse(name).map_err(|e| e.to_string())?,
                ),
            },
            expires_at: optional(&json.expires_at)?,
            created_at: instant(&json.created_at)?,
            seen_at: optional(&json.seen_at)?,
        })
    }
}

/// What an event records beside the token's facts (in `data` only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Annotations {
    pub rotated_from: Option<Selector>,
    pub threshold: Option<String>,
}

/// The text for `events.data` / `events.pre_data`, in `CURRENT_FORMAT`.
pub(crate) fn encode(
    facts: Option<&TokenFacts>,
    annotations: Annotations,
) -> Result<Option<String>, RepositoryError> {
    facts
        .map(|facts| {
            serde_json::to_string(&TokenJsonV1 {
                rotated_from: annotations.rotated_from.map(|from| from.to_string()),
                threshold: annotations.threshold,
                ..TokenJsonV1::from(facts)
            })
        })
        .transpose()
        .map_err(|e| RepositoryError::Internal(Box::new(e)))
}

/// The annotations recorded in a `data` column written in `format`.
pub(crate) fn decode_annotations(format: i32, text: Option<&str>) -> Result<Annotations, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Recorded {
        rotated_from: Option<String>,
        threshold: Option<String>,
    }
    let (1, Some(text)) = (format, text) else {
        return Ok(Annotations::default());
    };
    let recorded: Recorded = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(Annotations {
        rotated_from: recorded
            .rotated_from
            .map(|from| Selector::parse(&from).ok_or_else(|| format!("bad rotatedFrom {from:?}")))
            .transpose()?,
        threshold: recorded.threshold,
    })
}

/// Reads a column written in `format`; the error says what is wrong with it.
pub(crate) fn decode(format: i32, text: Option<&str>) -> Result<Option<TokenFacts>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    match format {
        1 => {
            let json: TokenJsonV1 = serde_json::from_str(text).map_err(|e| e.to_string())?;
            TokenFacts::try_from(json).map(Some)
        }
        other => Err(format!("unknown event format {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keywarden_domain::fixtures::{at, token};

    /// A row as the first release wrote it, before formats existed.
    const WRITTEN_BEFORE_FORMATS: &str = r#"{"secret":"SELECTOR","tokenName":"ci","type":"backend","project":"default","projects":["default"],"environment":"development","expiresAt":"2030-01-01T00:01:39.000Z","createdAt":"2030-01-01T00:00:10.000Z","seenAt":null,"alias":null,"secure":true}"#;

    #[test]
    fn format_1_is_byte_for_byte_what_was_always_stored() {
        let (ci, _) = token(1, "ci", TokenType::Backend, &["default"], at(10));
        let facts = ci.with_expiry(at(99)).facts();
        let written = encode(Some(&facts), Annotations::default())
            .unwrap()
            .unwrap();
        let expected = WRITTEN_BEFORE_FORMATS.replace("SELECTOR", &ci.selector().to_string());
        assert_eq!(written, expected);
        assert_eq!(decode(1, Some(&expected)), Ok(Some(facts)));
    }

    #[test]
    fn all_scopes_read_back() {
        let (admin, _) = token(2, "admin", TokenType::Admin, &["*"], at(0));
        let facts = admin.seen(at(5)).facts();
        let written = encode(Some(&facts), Annotations::default()).unwrap();
        assert_eq!(decode(1, written.as_deref()), Ok(Some(facts)));
        assert_eq!(decode(1, None), Ok(None));
    }

    #[test]
    fn the_rotation_link_reads_back_and_is_absent_otherwise() {
        let (ci, _) = token(1, "ci", TokenType::Backend, &["default"], at(10));
        let (old, _) = token(2, "ci", TokenType::Backend, &["default"], at(0));
        let annotations = Annotations {
            rotated_from: Some(old.selector()),
            threshold: Some("7d".into()),
        };
        let written = encode(Some(&ci.facts()), annotations.clone()).unwrap();
        assert!(written.as_deref().unwrap().contains("rotatedFrom"));
        assert_eq!(decode(1, written.as_deref()), Ok(Some(ci.facts())));
        assert_eq!(decode_annotations(1, written.as_deref()), Ok(annotations));
        let plain = encode(Some(&ci.facts()), Annotations::default()).unwrap();
        assert!(!plain.as_deref().unwrap().contains("threshold"));
        assert_eq!(
            decode_annotations(1, plain.as_deref()),
            Ok(Annotations::default())
        );
        assert_eq!(decode_annotations(1, None), Ok(Annotations::default()));
    }

    #[test]
    fn unknown_formats_and_broken_rows_are_errors() {
        let (ci, _) = token(1, "ci", TokenType::Backend, &["default"], at(10));
        let written = encode(Some(&ci.facts()), Annotations::default())
            .unwrap()
            .unwrap();
        assert!(decode(2, Some(&written)).unwrap_err().contains("format 2"));
        assert!(decode(1, Some("{}")).is_err());
        let bad = written.replace(&ci.selector().to_string(), "not-a-selector");
        assert!(decode(1, Some(&bad)).unwrap_err().contains("selector"));
    }
}
