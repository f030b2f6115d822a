//! Targets `page_tokens` (`service::paging::page_request`) and `revision_tokens`
//! (`Revision::parse_token`): arbitrary strings, base64 of arbitrary bytes and of hand-made JSON
//! (the old unsigned format), tokens minted by the server itself (at positions made from hostile
//! text), tokens minted for another query, and byte-level mutations of minted tokens. Only a
//! token minted for exactly the query is accepted.

use base64::Engine;
use consentry::domain::{Revision, Tag, UserId};
use consentry::service::paging::{Listing, MAX_PAGE_SIZE, next_page_token, page_request};
use consentry::store::Page;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::describe::{self, Choices, Mutation};
use crate::harness::{self, Finding, finding, fuzz};
use crate::parsers::FUZZ_SECRET;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The listing a case pages: one field, the case's query text.
fn listing(query: &str) -> Listing {
    Listing::new("fuzz").field(query)
}

/// A token minted for `query` whose position is the user id `after`, if `after` is one.
fn minted(query: &str, after: &str) -> Option<String> {
    let page = Page::<(), UserId> {
        items: Vec::new(),
        next: Some(UserId::parse("page_token", after).ok()?),
    };
    Some(next_page_token(&FUZZ_SECRET, &page, &listing(query)))
}

/// How a page token of one case is made.
#[derive(Debug, Clone)]
enum Token {
    /// Any string.
    Text(String),
    /// Base64 of any bytes.
    Bytes(Vec<u8>),
    /// Base64 of JSON made of hostile values (the old token format and near misses).
    Json(Vec<u32>),
    /// Minted for the case's query, at a position made from hostile text where it is a user id.
    Minted(Vec<u32>),
    /// Minted for another query.
    Foreign(Vec<u32>),
    /// Minted, then mutated byte by byte.
    Mutated(Vec<u32>, Vec<Mutation>),
}

fn token_text(token: &Token, query: &str) -> String {
    let hostile = |c: &[u32]| describe::string(&mut Choices::new(c));
    let minted_or_any = |q: &str, c: &[u32]| {
        let after = hostile(c);
        minted(q, &after).unwrap_or(after)
    };
    match token {
        Token::Text(s) => s.clone(),
        Token::Bytes(b) => b64(b),
        Token::Json(c) => {
            let mut ch = Choices::new(c);
            let (q, a) = (describe::string(&mut ch), describe::string(&mut ch));
            let json = match ch.below(5) {
                0 => serde_json::json!({ "q": q, "a": a }),
                1 => serde_json::json!({ "q": q }),
                2 => serde_json::json!({ "q": 1, "a": [a] }),
                3 => serde_json::json!([q, a]),
                _ => serde_json::json!({ "q": q, "a": a, "x": null }),
            };
            b64(json.to_string().as_bytes())
        }
        Token::Minted(c) => minted_or_any(query, c),
        Token::Foreign(c) => minted_or_any(&format!("{query}x"), c),
        Token::Mutated(c, m) => {
            let text = minted_or_any(query, c);
            String::from_utf8_lossy(&describe::mutate(text.into_bytes(), m)).into_owned()
        }
    }
}

fn tokens() -> impl Strategy<Value = Token> {
    let choices = || prop::collection::vec(any::<u32>(), 0..8);
    prop_oneof![
        any::<String>().prop_map(Token::Text),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Token::Bytes),
        choices().prop_map(Token::Json),
        choices().prop_map(Token::Minted),
        choices().prop_map(Token::Foreign),
        (
            choices(),
            prop::collection::vec(any::<(u16, u8, u8)>(), 1..4)
        )
            .prop_map(|(c, m)| Token::Mutated(c, m)),
    ]
}

fn page_sizes() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(-1),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(MAX_PAGE_SIZE as i32 + 1),
        any::<i32>(),
    ]
}

fn check_page(size: i32, token: &Token, query: &str) -> Result<(), TestCaseError> {
    let text = token_text(token, query);
    let fields = ["page_size".to_owned(), "page_token".to_owned()];
    match page_request::<UserId>(&FUZZ_SECRET, size, &text, &listing(query)) {
        Err(e) => {
            harness::tally("rejected");
            harness::validation(&fields, e)
        }
        Ok(page) => {
            harness::tally(if text.is_empty() {
                "first pages"
            } else {
                "accepted tokens"
            });
            prop_assert!(size >= 0, "a negative page size was accepted");
            prop_assert!(
                page.limit >= 1 && page.limit <= MAX_PAGE_SIZE,
                "limit {}",
                page.limit
            );
            let Some(after) = page.after else {
                prop_assert!(text.is_empty(), "a token was accepted without a position");
                return Ok(());
            };
            prop_assert!(
                !matches!(token, Token::Foreign(_)),
                "a token minted for another query was accepted"
            );
            prop_assert!(
                matches!(token, Token::Minted(_) | Token::Mutated(..)),
                "a token this deployment did not mint was accepted: {text:?}"
            );
            if after.as_str().contains('\0') {
                finding(Finding::PageTokenNul, after.as_str())?;
            }
            if let Token::Minted(c) = token {
                let expected = describe::string(&mut Choices::new(c));
                prop_assert_eq!(
                    after.as_str(),
                    expected,
                    "a minted token's position changed"
                );
            }
            Ok(())
        }
    }
}

#[test]
fn page_tokens_are_parsed_without_panic_and_refused_as_invalid_argument() {
    let query = (
        prop::collection::vec(any::<u32>(), 0..4),
        tokens(),
        page_sizes(),
    );
    fuzz(
        "page_tokens",
        harness::budget(),
        query,
        |(q, token, size)| {
            let query = describe::string(&mut Choices::new(&q));
            check_page(size, &token, &query)
        },
    );
}

/// How a revision token of one case is made.
#[derive(Debug, Clone)]
enum RevisionInput {
    /// Any string.
    Text(String),
    /// The token of a revision (its number and tag), mutated.
    Mutated(u64, u64, Vec<Mutation>),
    /// `r` and digits, possibly too many.
    Digits(String),
}

fn revision_inputs() -> impl Strategy<Value = RevisionInput> {
    prop_oneof![
        any::<String>().prop_map(RevisionInput::Text),
        (
            any::<u64>(),
            prop_oneof![Just(0u64), 1..=i64::MAX as u64],
            prop::collection::vec(any::<(u16, u8, u8)>(), 0..4)
        )
            .prop_map(|(n, tag, m)| RevisionInput::Mutated(n, tag, m)),
        "[0-9]{0,40}".prop_map(RevisionInput::Digits),
    ]
}

fn check_revision(input: &RevisionInput) -> Result<(), TestCaseError> {
    let text = match input {
        RevisionInput::Text(s) => s.clone(),
        RevisionInput::Mutated(n, tag, m) => {
            let revision = Revision(*n, Tag(*tag));
            let token = revision.token();
            let parsed = Revision::parse_token("t", &token);
            prop_assert!(parsed.is_ok_and(|p| p.same_point(revision)), "{}", token);
            String::from_utf8_lossy(&describe::mutate(token.into_bytes(), m)).into_owned()
        }
        RevisionInput::Digits(d) => format!("r{d}"),
    };
    let field = "consistency.at_least_as_fresh";
    match Revision::parse_token(field, &text) {
        Err(e) => {
            harness::tally("rejected");
            harness::validation(&["consistency".to_owned()], e)
        }
        Ok(rev) => {
            harness::tally("accepted");
            let rest = text.strip_prefix('r').unwrap_or("");
            let (digits, tag) = rest.split_once('.').unwrap_or((rest, ""));
            prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(digits.parse::<u64>().ok(), Some(rev.0));
            let expected = if tag.is_empty() {
                Some(0)
            } else {
                u64::from_str_radix(tag, 16).ok()
            };
            prop_assert_eq!(expected, Some(rev.tag().0));
            Ok(())
        }
    }
}

#[test]
fn revision_tokens_are_parsed_without_panic_and_refused_as_invalid_argument() {
    fuzz(
        "revision_tokens",
        harness::budget(),
        revision_inputs(),
        |input| check_revision(&input),
    );
}
