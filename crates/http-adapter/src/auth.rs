//! Authentication and authorization for `/api/admin`: a middleware that runs
//! before any extractor (so a bad request without credentials is a 401, never
//! a 400), and the extractor handlers use to learn who is acting.

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use keywarden_application::{ApiTokenUseCases, Principal};

use crate::error::{ApiError, ErrorKind};

/// The credential in an `Authorization` header: raw, or after a `Bearer`
/// scheme (any case, any amount of space).
fn presented(header: Option<&HeaderValue>) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorKind::AuthenticationRequired,
            "You must log in to use this endpoint: send an API token in the Authorization header.",
        )
    };
    let value = header.ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorKind::Unauthorized,
            "The Authorization header is not valid text.",
        )
    })?;
    let value = value.trim();
    let credential = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    if credential.is_empty() {
        Err(missing())
    } else {
        Ok(credential)
    }
}

/// The credential a request presents. Two or more `Authorization` headers
/// are refused rather than one of them picked (api-tokens.md §2).
pub(crate) fn credential(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Send one Authorization header, not several.",
        ));
    }
    presented(first)
}

/// Lets only admin tokens through, and records who they are for the handler.
pub(crate) async fn require_admin<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let outcome = match req.app_data::<web::Data<dyn ApiTokenUseCases>>() {
        None => Err(ApiError::new(
            ErrorKind::Internal,
            "authentication is not configured",
        )),
        Some(usecases) => credential(req.headers()).and_then(|credential| {
            usecases
                .authenticate_admin(credential)
                .map_err(ApiError::from)
        }),
    };
    match outcome {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            if error.kind() == ErrorKind::AuthenticationRequired {
                metrics::counter!("keywarden_authentications_total", "outcome" => "missing")
                    .increment(1);
            }
            Ok(req.error_response(error).map_into_right_body())
        }
    }
}

/// The authenticated admin acting on this request.
pub(crate) struct Acting(pub Principal);

impl FromRequest for Acting {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(Acting)
                .ok_or_else(|| {
                    ApiError::new(ErrorKind::Internal, "route is not behind authentication")
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<String, ErrorKind> {
        let header = HeaderValue::from_str(value).unwrap();
        presented(Some(&header))
            .map(str::to_string)
            .map_err(|e| e.kind())
    }

    #[test]
    fn raw_and_bearer_credentials() {
        assert_eq!(parse("*:*.abc").unwrap(), "*:*.abc");
        assert_eq!(parse("Bearer *:*.abc").unwrap(), "*:*.abc");
        assert_eq!(parse("bEaReR    *:*.abc  ").unwrap(), "*:*.abc");
        assert_eq!(parse("  *:*.abc ").unwrap(), "*:*.abc");
    }

    #[test]
    fn empty_headers_require_authentication_and_other_schemes_fail_lookup() {
        assert_eq!(
            presented(None).unwrap_err().kind(),
            ErrorKind::AuthenticationRequired
        );
        assert_eq!(parse("").unwrap_err(), ErrorKind::AuthenticationRequired);
        assert_eq!(parse("   ").unwrap_err(), ErrorKind::AuthenticationRequired);
        assert_eq!(
            parse("Bearer").unwrap_err(),
            ErrorKind::AuthenticationRequired
        );
        assert_eq!(
            parse("Bearer   ").unwrap_err(),
            ErrorKind::AuthenticationRequired
        );
        // Passed on whole: no stored credential contains a space, so it is unknown.
        assert_eq!(parse("Basic dXNlcjpwYXNz").unwrap(), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn several_authorization_headers_are_unauthorized() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("*:*.one"));
        assert_eq!(credential(&headers).unwrap(), "*:*.one");
        headers.append(AUTHORIZATION, HeaderValue::from_static("*:*.one"));
        assert_eq!(
            credential(&headers).unwrap_err().kind(),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            credential(&HeaderMap::new()).unwrap_err().kind(),
            ErrorKind::AuthenticationRequired
        );
    }

    #[test]
    fn non_text_headers_are_unauthorized() {
        let header = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(
            presented(Some(&header)).unwrap_err().kind(),
            ErrorKind::Unauthorized
        );
    }
}
