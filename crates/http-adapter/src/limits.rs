//! Request limits below the HTTP server's own: paths and header blocks larger
//! than configured are refused with the contract's JSON error body (414/431)
//! before any other work. Body size is limited where bodies are read.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::error::{ApiError, ErrorKind};

/// Largest request target and header block accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_path_bytes: usize,
    pub max_header_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_path_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

pub(crate) async fn enforce<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let limits = req.app_data::<RequestLimits>().copied().unwrap_or_default();
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let refusal = if target > limits.max_path_bytes {
        Some(ApiError::new(
            ErrorKind::UriTooLong,
            format!(
                "The request target is longer than {} bytes.",
                limits.max_path_bytes
            ),
        ))
    } else if headers > limits.max_header_bytes {
        Some(ApiError::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "The request headers exceed {} bytes.",
                limits.max_header_bytes
            ),
        ))
    } else {
        None
    };
    match refusal {
        Some(error) => Ok(req.error_response(error).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}
