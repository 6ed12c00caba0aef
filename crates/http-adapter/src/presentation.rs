//! Unleash's presentation rules: where what a client reads differs from what
//! is stored. Kept apart from the response structs so the rule is one function
//! whichever struct shows the token.

use keywarden_domain::TokenType;

/// When a token is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// The create response and the `api-token-created` event.
    AsCreated,
    /// Every later read: list, by name, events of later changes.
    OnRead,
}

/// The `type` a client sees. `client` is the older name of `backend`; Unleash
/// 7.5.1 echoes `backend` on create but answers `client` on every read, and
/// clients that compare what they read with what they wrote expect that.
pub(crate) fn wire_type(token_type: TokenType, shown: Shown) -> &'static str {
    match (token_type, shown) {
        (TokenType::Backend, Shown::OnRead) => TokenType::Client.as_str(),
        (other, _) => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backend_reads_change() {
        for token_type in [
            TokenType::Client,
            TokenType::Backend,
            TokenType::Frontend,
            TokenType::Admin,
        ] {
            assert_eq!(wire_type(token_type, Shown::AsCreated), token_type.as_str());
        }
        assert_eq!(wire_type(TokenType::Backend, Shown::OnRead), "client");
        assert_eq!(wire_type(TokenType::Client, Shown::OnRead), "client");
        assert_eq!(wire_type(TokenType::Frontend, Shown::OnRead), "frontend");
        assert_eq!(wire_type(TokenType::Admin, Shown::OnRead), "admin");
    }
}
