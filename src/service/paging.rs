//! Page sizes and opaque page tokens. A token carries the position after which the next page
//! starts and a fingerprint of the query, so it is only valid with the same query.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Valid, ValidationError};
use crate::store::{Page, PageRequest};

/// Items per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most items a page holds; larger requests are clamped.
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Serialize, Deserialize)]
struct Token {
    q: String,
    a: String,
}

fn fingerprint(query: &str) -> String {
    Sha256::digest(query.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The page a request asks for. `query` names everything that selects the items (tenant,
/// filters, viewer) and must be the same for every page of one listing.
pub fn page_request(page_size: i32, page_token: &str, query: &str) -> Valid<PageRequest> {
    let limit = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            return Err(ValidationError::new(
                "page_size",
                format_args!("{n} is negative"),
            ));
        }
        n => u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
    };
    if page_token.is_empty() {
        return Ok(PageRequest { after: None, limit });
    }
    let bad = || {
        ValidationError::new(
            "page_token",
            "is not a token from a previous page of this query",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(page_token)
        .map_err(|_| bad())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if token.q != fingerprint(query) {
        return Err(bad());
    }
    Ok(PageRequest {
        after: Some(token.a),
        limit,
    })
}

/// The token for the page after `page`; empty on the last page.
pub fn next_page_token<T>(page: &Page<T>, query: &str) -> String {
    match &page.next {
        None => String::new(),
        Some(after) => {
            let token = Token {
                q: fingerprint(query),
                a: after.clone(),
            };
            let json = serde_json::to_vec(&token).unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_default_and_clamp() {
        assert_eq!(page_request(0, "", "q").unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(page_request(7, "", "q").unwrap().limit, 7);
        assert_eq!(page_request(10_000, "", "q").unwrap().limit, MAX_PAGE_SIZE);
        assert_eq!(page_request(-1, "", "q").unwrap_err().field, "page_size");
    }

    #[test]
    fn tokens_round_trip_only_with_the_same_query() {
        let page = Page {
            items: vec![1],
            next: Some("after-me".to_owned()),
        };
        let token = next_page_token(&page, "tenant=a");
        assert_eq!(
            page_request(10, &token, "tenant=a")
                .unwrap()
                .after
                .as_deref(),
            Some("after-me")
        );
        assert_eq!(
            page_request(10, &token, "tenant=b").unwrap_err().field,
            "page_token"
        );
        assert!(page_request(10, "garbage!", "tenant=a").is_err());
        assert_eq!(
            next_page_token(
                &Page::<u8> {
                    items: vec![],
                    next: None
                },
                "q"
            ),
            ""
        );
    }
}
