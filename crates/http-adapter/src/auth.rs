//! Authentication and authorization for `/api/admin`: the one rule for
//! reading a presented credential, a middleware that runs before any
//! extractor (so a bad request without credentials is a 401, never a 400),
//! and the extractor handlers use to learn who is acting.

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use keywarden_application::{ApiTokenUseCases, Principal};

use crate::error::{ApiError, ErrorKind};

/// The credential a request presents, read the one way every route that
/// reads it must (the Admin API's middleware, `/api/verify`): `None` without
/// an `Authorization` header or with an empty one; `Unauthorized` for two or
/// more such headers (neither may silently win, whatever a proxy in front
/// makes of them) or one that is not text.
///
/// # Errors
/// `Unauthorized`, as above.
pub(crate) fn presented_credential(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let mut headers = req.headers().get_all(AUTHORIZATION);
    let Some(header) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Send one Authorization header, not several.",
        ));
    }
    credential_in(header)
}

/// The credential in one `Authorization` header: raw, or after a `Bearer`
/// scheme (any case, any amount of space); `None` when empty.
fn credential_in(header: &HeaderValue) -> Result<Option<&str>, ApiError> {
    let value = header.to_str().map_err(|_| {
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
    Ok(Some(credential).filter(|c| !c.is_empty()))
}

/// The credential the Admin API requires.
fn required_credential(req: &HttpRequest) -> Result<&str, ApiError> {
    presented_credential(req)?.ok_or_else(|| {
        ApiError::new(
            ErrorKind::AuthenticationRequired,
            "You must log in to use this endpoint: send an API token in the Authorization header.",
        )
    })
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
        Some(usecases) => required_credential(req.request()).and_then(|credential| {
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

    fn presented_by(values: &[&[u8]]) -> Result<Option<String>, ErrorKind> {
        let mut req = actix_web::test::TestRequest::default();
        for value in values {
            req = req.append_header((AUTHORIZATION, HeaderValue::from_bytes(value).unwrap()));
        }
        presented_credential(&req.to_http_request())
            .map(|c| c.map(str::to_string))
            .map_err(|e| e.kind())
    }

    fn parse(value: &str) -> Result<String, ErrorKind> {
        presented_by(&[value.as_bytes()]).map(|c| c.unwrap_or_default())
    }

    #[test]
    fn raw_and_bearer_credentials() {
        assert_eq!(parse("*:*.abc").unwrap(), "*:*.abc");
        assert_eq!(parse("Bearer *:*.abc").unwrap(), "*:*.abc");
        assert_eq!(parse("bEaReR    *:*.abc  ").unwrap(), "*:*.abc");
        assert_eq!(parse("  *:*.abc ").unwrap(), "*:*.abc");
    }

    #[test]
    fn empty_headers_present_nothing_and_other_schemes_fail_lookup() {
        assert_eq!(presented_by(&[]), Ok(None));
        for empty in ["", "   ", "Bearer", "Bearer   "] {
            assert_eq!(presented_by(&[empty.as_bytes()]), Ok(None), "{empty:?}");
        }
        // Passed on whole: no stored credential contains a space, so it is unknown.
        assert_eq!(parse("Basic dXNlcjpwYXNz").unwrap(), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn non_text_and_repeated_headers_are_unauthorized() {
        assert_eq!(presented_by(&[b"\xff\xfe"]), Err(ErrorKind::Unauthorized));
        assert_eq!(
            presented_by(&[b"*:*.abc", b"*:*.abc"]),
            Err(ErrorKind::Unauthorized)
        );
        assert_eq!(
            presented_by(&[b"", b"*:*.abc"]),
            Err(ErrorKind::Unauthorized)
        );
    }
}
