//! `ApiError`: the only place that knows HTTP status codes. Application errors
//! and the adapter's own request errors become Unleash-shaped JSON bodies;
//! internal causes are logged, never sent.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use keywarden_application::AppError;
use serde::Serialize;
use tracing::error;
use uuid::Uuid;

/// The kinds of failure a client can see, each with one status and one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AuthenticationRequired,
    Unauthorized,
    WrongTokenType,
    /// A valid token outside the scope a place requires; full error body.
    OutOfScope,
    BadData,
    ContentType,
    NotFound,
    MethodNotAllowed,
    ExceedsLimit,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    Conflict,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::AuthenticationRequired | Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::WrongTokenType | Self::OutOfScope => StatusCode::FORBIDDEN,
            Self::BadData | Self::ExceedsLimit => StatusCode::BAD_REQUEST,
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `name` field, as Unleash spells it where Unleash has one.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthenticationRequired => "AuthenticationRequired",
            Self::Unauthorized => "UnauthorizedError",
            Self::WrongTokenType | Self::OutOfScope => "ForbiddenError",
            Self::BadData => "BadDataError",
            Self::ContentType => "ContentTypeError",
            Self::NotFound => "NotFoundError",
            Self::MethodNotAllowed => "MethodNotAllowedError",
            Self::ExceedsLimit => "ExceedsLimitError",
            Self::PayloadTooLarge => "ContentTooLargeError",
            Self::UriTooLong => "UriTooLongError",
            Self::HeadersTooLarge => "HeadersTooLargeError",
            Self::Conflict => "ConflictError",
            Self::Unavailable => "ServiceUnavailableError",
            Self::Internal => "InternalError",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    /// JSON pointer into the request (`/body/expiresAt`), when one part is to blame.
    path: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            path: None,
        }
    }

    /// A 400 `BadDataError` pointing at `path`.
    pub fn bad_data(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_string()),
            ..Self::new(ErrorKind::BadData, message)
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// 5xx responses say only this much; the cause goes to the log.
    fn hidden(kind: ErrorKind, cause: &(dyn StdError + 'static)) -> Self {
        error!(error = %keywarden_application::error_chain(cause), status = kind.status().as_u16(), "request failed");
        let message = match kind {
            ErrorKind::Unavailable => "The service is temporarily unavailable. Try again shortly.",
            _ => "An internal error occurred. It has been logged.",
        };
        Self::new(kind, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Validation { message, field } => Self {
                path: Some(field.map_or_else(|| "/body".to_string(), |f| format!("/body/{f}"))),
                ..Self::new(ErrorKind::BadData, message)
            },
            AppError::LimitExceeded(message) => Self::new(ErrorKind::ExceedsLimit, message),
            AppError::Unauthorized => Self::new(
                ErrorKind::Unauthorized,
                "You must log in with a valid API token to use this endpoint.",
            ),
            AppError::Forbidden => Self::new(
                ErrorKind::WrongTokenType,
                "invalid token: expected a different token type for this endpoint",
            ),
            AppError::NotFound(message) => Self::new(ErrorKind::NotFound, message),
            AppError::Conflict(message) => {
                error!(error = %message, "write conflicted with stored data");
                Self::new(
                    ErrorKind::Conflict,
                    "The request conflicts with stored data.",
                )
            }
            AppError::Unavailable(ref cause) => {
                Self::hidden(ErrorKind::Unavailable, cause.as_ref())
            }
            AppError::Internal(ref cause) => Self::hidden(ErrorKind::Internal, cause.as_ref()),
        }
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    name: &'static str,
    message: &'a str,
    details: [Detail<'a>; 1],
}

#[derive(Serialize)]
struct MessageOnly<'a> {
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.kind == ErrorKind::WrongTokenType {
            // Unleash answers this one with a bare message; clients match on it.
            return response.json(MessageOnly {
                message: &self.message,
            });
        }
        response.json(Body {
            id: Uuid::new_v4().to_string(),
            name: self.kind.name(),
            message: &self.message,
            details: [Detail {
                message: &self.message,
                path: self.path.as_deref(),
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.error_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn application_errors_map_to_status_and_name() {
        let table: Vec<(AppError, u16, Option<&str>)> = vec![
            (
                AppError::validation("bad", Some("tokenName")),
                400,
                Some("BadDataError"),
            ),
            (AppError::validation("bad", None), 400, Some("BadDataError")),
            (
                AppError::LimitExceeded("too many".into()),
                400,
                Some("ExceedsLimitError"),
            ),
            (AppError::Unauthorized, 401, Some("UnauthorizedError")),
            (AppError::Forbidden, 403, None),
            (
                AppError::NotFound("gone".into()),
                404,
                Some("NotFoundError"),
            ),
            (AppError::Conflict("dup".into()), 409, Some("ConflictError")),
            (
                AppError::Unavailable("pool timeout".into()),
                503,
                Some("ServiceUnavailableError"),
            ),
            (
                AppError::Internal("boom".into()),
                500,
                Some("InternalError"),
            ),
        ];
        for (error, status, name) in table {
            let label = format!("{error:?}");
            let (actual, body) = body_of(ApiError::from(error)).await;
            assert_eq!(actual.as_u16(), status, "{label}");
            match name {
                Some(name) => {
                    assert_eq!(body["name"], name, "{label}");
                    assert!(
                        body["id"].as_str().is_some_and(|id| id.len() == 36),
                        "{label}"
                    );
                    assert_eq!(body["details"][0]["message"], body["message"], "{label}");
                }
                None => assert_eq!(
                    body,
                    serde_json::json!({"message": "invalid token: expected a different token type for this endpoint"})
                ),
            }
        }
    }

    #[actix_web::test]
    async fn validation_errors_point_at_the_field() {
        let (_, body) = body_of(AppError::validation("bad", Some("expiresAt")).into()).await;
        assert_eq!(body["details"][0]["path"], "/body/expiresAt");
        let (_, body) = body_of(AppError::validation("bad", None).into()).await;
        assert_eq!(body["details"][0]["path"], "/body");
    }

    #[actix_web::test]
    async fn internal_causes_never_reach_the_client() {
        let (_, body) = body_of(AppError::Internal("secret table name".into()).into()).await;
        assert!(!body.to_string().contains("secret table name"));
        let (_, body) = body_of(AppError::Unavailable("db at 10.0.0.1".into()).into()).await;
        assert!(!body.to_string().contains("10.0.0.1"));
    }
}
