//! Reading requests strictly: path parameters percent-decoded exactly once
//! (invalid encodings are a 400, not a guess), the JSON content type (415),
//! and bodies read under a size limit (413) and parsed as JSON (400).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest};
use serde_json::Value;

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

/// Checks the content type, then reads and parses the body.
pub(crate) async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<Value, ApiError> {
    let limit = req
        .app_data::<BodyLimit>()
        .map_or(64 * 1024, |limit| limit.0);
    json_body_within(req, payload, limit).await
}

/// As [`json_body`], under a route's own size limit.
pub(crate) async fn json_body_within(
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
