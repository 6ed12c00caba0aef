//! Reading requests strictly: path parameters percent-decoded exactly once
//! (invalid encodings are a 400, not a guess), the JSON content type (415),
//! and bodies read under a size limit (413), parsed as JSON and read into
//! their type (400 naming the field to blame: `/body/expiresAt`).

use std::fmt;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorKind};

/// Most bytes a JSON body may have.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The last path segment (every route's parameter is last), decoded from the
/// raw request target rather than from the router's partly decoded copy.
pub(crate) fn last_segment(req: &HttpRequest) -> Result<String, ApiError> {
    let raw = req.uri().path().rsplit('/').next().unwrap_or_default();
    percent_decode(raw).ok_or_else(|| {
        ApiError::bad_data(
            "/params",
            "The path contains an invalid percent-encoding or is not UTF-8.",
        )
    })
}

pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // from_str_radix alone would take "+A" as a number.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `application/json` or any `+json` type, with or without parameters.
fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Checks the content type, then reads the body into `T`.
pub(crate) async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let limit = req
        .app_data::<BodyLimit>()
        .map_or(64 * 1024, |limit| limit.0);
    typed_body(json_value(req, payload, limit).await?)
}

/// Checks the content type, then reads the body (at most `limit` bytes, a
/// route's own limit or the server's) as JSON.
pub(crate) async fn json_value(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    if !is_json(req) {
        return Err(ApiError::new(
            ErrorKind::ContentType,
            "Request body must be JSON: send Content-Type: application/json.",
        ));
    }
    let bytes = match payload.to_bytes_limited(limit).await {
        Err(_) => {
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("The request body is larger than {limit} bytes."),
            ))
        }
        Ok(Err(error)) => {
            return Err(ApiError::bad_data(
                "/body",
                format!("The request body could not be read: {error}"),
            ))
        }
        Ok(Ok(bytes)) => bytes,
    };
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_data(
            "/body",
            format!("The request body is not valid JSON: {error}"),
        )
    })
}

/// A JSON object read into `T`. serde's own errors do not say which field
/// failed, so the object's fields are handed to `T` one by one and an error is
/// tagged with the field being read (or, for a missing one, the field named).
pub(crate) fn typed_body<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_data(
            "/body",
            "The request body must be a JSON object.",
        ));
    };
    T::deserialize(Fields::new(fields)).map_err(|error| match error.field {
        Some(field) => ApiError::bad_data(
            &format!("/body/{field}"),
            format!("{field}: {}", error.message),
        ),
        None => ApiError::bad_data("/body", error.message),
    })
}

/// Why a body could not be read, and the field to blame when there is one.
#[derive(Debug)]
struct FieldError {
    field: Option<String>,
    message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Self {
            field: None,
            message: message.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            field: Some(field.to_string()),
            message: "this field is required.".to_string(),
        }
    }
}

/// A JSON object as a serde map that remembers which field it is reading.
struct Fields {
    entries: serde_json::map::IntoIter,
    current: Option<(String, Value)>,
}

impl Fields {
    fn new(fields: Map<String, Value>) -> Self {
        Self {
            entries: fields.into_iter(),
            current: None,
        }
    }
}

impl<'de> de::Deserializer<'de> for Fields {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        let Some((name, value)) = self.entries.next() else {
            return Ok(None);
        };
        let key = seed.deserialize(name.as_str().into_deserializer())?;
        self.current = Some((name, value));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let (name, value) = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("a value was read before its field name"))?;
        seed.deserialize(value).map_err(|error| FieldError {
            field: Some(name),
            // serde speaks of Rust's shapes; the client sent JSON.
            message: error
                .to_string()
                .replace("a sequence", "an array")
                .replace("a map", "an object"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn decodes_exactly_once_and_refuses_broken_encodings() {
        assert_eq!(
            percent_decode("%2A%3Adev.v2_x").as_deref(),
            Some("*:dev.v2_x")
        );
        assert_eq!(percent_decode("%5B%5D%3Aa").as_deref(), Some("[]:a"));
        assert_eq!(percent_decode("%2525").as_deref(), Some("%25"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%zz", "%FF", "a%2", "%+A", "%-1", "% A"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(
                is_json(
                    &TestRequest::default()
                        .insert_header((CONTENT_TYPE, ok))
                        .to_http_request()
                ),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(
                !is_json(
                    &TestRequest::default()
                        .insert_header((CONTENT_TYPE, bad))
                        .to_http_request()
                ),
                "{bad}"
            );
        }
        assert!(!is_json(&TestRequest::default().to_http_request()));
    }
}
