//! Webhook deliveries on the wire (lifecycle §4): the JSON message for an
//! audit event, signed as Standard Webhooks specifies (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`), and the HTTP client that posts it. Tokens appear
//! as the Admin API shows them on reads: never a credential.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use keywarden_application::{DeliveryError, Endpoint, WebhookSender};
use keywarden_domain::{format_millis, StoredEvent};
use serde::Serialize;
use sha2::Sha256;

use crate::dto::TokenBody;
use crate::presentation::Shown;

/// Longest a delivery may take, connection included; a slower endpoint's
/// attempt fails and is retried. (Shorter than the dispatcher's claim.)
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    event_id: i64,
    created_by: String,
    token: Option<TokenBody>,
    pre_token: Option<TokenBody>,
    threshold: Option<String>,
}

#[derive(Serialize)]
struct Message {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    data: Data,
}

/// The message body for `stored`: the token after the change (or as it was,
/// when deleted), and before it where there was a before and an after.
pub fn message_body(stored: &StoredEvent) -> Vec<u8> {
    let event = &stored.event;
    let shown = |facts| TokenBody::shown(facts, Shown::OnRead);
    let (token, pre_token) = match (&event.data, &event.pre_data) {
        (Some(after), before) => (Some(shown(after)), before.as_ref().map(shown)),
        (None, before) => (before.as_ref().map(shown), None),
    };
    let message = Message {
        event_type: event.event_type.as_str(),
        timestamp: format_millis(&event.created_at),
        data: Data {
            event_id: stored.id,
            created_by: event.created_by.clone(),
            token: token
                .map(|body| body.rotated_from(event.rotated_from.map(|from| from.to_string()))),
            pre_token,
            threshold: event.threshold.clone(),
        },
    };
    // Plain strings, numbers and options: serialising cannot fail.
    serde_json::to_vec(&message).unwrap_or_default()
}

/// The `webhook-id` of `stored`'s delivery: the same on every retry and
/// from every instance; with the recording instant, so that a database
/// started afresh does not repeat ids a receiver has seen.
pub fn message_id(stored: &StoredEvent) -> String {
    format!(
        "evt_{}_{}",
        stored.id,
        stored.event.created_at.timestamp_millis()
    )
}

/// `v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Posts deliveries over HTTP(S).
pub struct HttpWebhookSender {
    client: reqwest::Client,
}

impl HttpWebhookSender {
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(SEND_TIMEOUT)
            // A redirect would resend a signed message somewhere unconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keywarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

/// What went wrong, without the URL (which may carry credentials).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(
        &self,
        endpoint: &Endpoint,
        event: &StoredEvent,
        attempt_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        let body = message_body(event);
        let id = message_id(event);
        let timestamp = attempt_at.timestamp();
        let signed = signature(endpoint.key.expose(), &id, timestamp, &body);
        let response = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(body)
            .send()
            .await
            .map_err(|error| DeliveryError(describe(&error.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError(format!("answered HTTP {}", status.as_u16())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keywarden_domain::fixtures::{at, token};
    use keywarden_domain::{Actor, AuditEvent, TokenType};

    #[test]
    fn the_signature_is_the_specifications_example() {
        // The example of the Standard Webhooks specification's reference
        // implementations: secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signed = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn messages_carry_the_token_as_read_and_never_a_credential() {
        let (ci, credential) = token(1, "ci", TokenType::Backend, &["default"], at(10));
        let after = ci.with_expiry(at(99));
        let event = AuditEvent::token_updated(&ci, &after, &Actor::named("cli"), at(50));
        let stored = StoredEvent { id: 7, event };
        let body = String::from_utf8(message_body(&stored)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["type"], "api-token-updated");
        assert_eq!(json["data"]["eventId"], 7);
        assert_eq!(json["data"]["createdBy"], "cli");
        assert_eq!(json["data"]["token"]["tokenName"], "ci");
        assert_eq!(
            json["data"]["token"]["type"], "client",
            "backend reads back as client"
        );
        assert!(json["data"]["preToken"].is_object());
        assert!(json["data"]["threshold"].is_null());
        assert!(!body.contains(credential.expose_secret()));
        let secret_part = credential.expose_secret().rsplit('.').next().unwrap();
        assert!(!body.contains(secret_part));
        assert_eq!(message_id(&stored), message_id(&stored.clone()));
    }

    #[test]
    fn a_deleted_token_is_the_messages_token() {
        let (ci, _) = token(1, "ci", TokenType::Client, &["*"], at(10));
        let event = AuditEvent::token_deleted(&ci, &Actor::named("cli"), at(50));
        let body = message_body(&StoredEvent { id: 1, event });
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["data"]["token"]["tokenName"], "ci");
        assert!(json["data"]["preToken"].is_null());
    }
}
