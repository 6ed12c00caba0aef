//! A raw HTTP/1.1 client over plain TCP: one connection per request,
//! `Connection: close`, the answer read to its end. Tests control every byte of
//! the request line, headers and body, which a real client would normalise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// One answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    /// The `name` of an error body.
    pub fn error_name(&self) -> String {
        self.json()["name"].as_str().unwrap_or_default().to_string()
    }

    fn parse(text: &str) -> Option<Self> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Self {
            status,
            headers,
            body: body.to_string(),
        })
    }
}

/// The request text: the given headers, `Host`, `Connection: close`, and a
/// `Content-Length` when there is a body.
pub fn request_text(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    request
}

/// Sends `request` to `127.0.0.1:port`; `None` when no answer came (refused,
/// reset, or closed before a status line), e.g. while the server stops.
pub fn try_exchange(port: u16, request: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(request).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    Response::parse(&String::from_utf8_lossy(&raw))
}

/// Sends `request` to `127.0.0.1:port` and returns the answer.
///
/// # Panics
/// When no answer comes.
pub fn exchange(port: u16, request: &[u8]) -> Response {
    try_exchange(port, request).unwrap_or_else(|| {
        panic!(
            "no answer from port {port} to {:?}",
            String::from_utf8_lossy(request)
        )
    })
}

/// Sends one request built by [`request_text`].
///
/// # Panics
/// When no answer comes.
pub fn send(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    exchange(port, request_text(method, target, headers, body).as_bytes())
}

/// `%XX`-encodes every byte that is not unreserved.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Asserts `response` is an error with the contract's full body
/// (api-tokens.md §3): `status`, `name`, an id, and the message repeated in
/// `details`.
///
/// # Panics
/// When it is not.
pub fn assert_error(response: &Response, status: u16, name: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    let body = response.json();
    assert_eq!(body["name"], name, "{body}");
    assert!(
        body["id"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["details"][0]["message"], body["message"], "{body}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_into_status_headers_and_body() {
        let response =
            Response::parse("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope")
                .unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.headers["content-type"], "text/plain");
        assert_eq!(response.body, "nope");
        assert!(Response::parse("").is_none(), "no status line, no answer");
    }

    #[test]
    fn requests_carry_a_length_only_with_a_body() {
        let text = request_text("PUT", "/x", &[("A", "b")], Some("{}"));
        assert!(
            text.ends_with("A: b\r\nContent-Length: 2\r\n\r\n{}"),
            "{text}"
        );
        assert!(!request_text("GET", "/x", &[], None).contains("Content-Length"));
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
