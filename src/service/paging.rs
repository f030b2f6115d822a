//! Page sizes and page tokens. A token is the position after which the next page starts (the
//! typed key of the previous page's last item) and an HMAC-SHA256 tag over the exact query and
//! that position, keyed with the deployment's secret ([`PageSecret`], kept in the store and the
//! same for every instance). So a token is accepted only unchanged, for exactly the query it was
//! minted for, by the deployment that minted it; anything else is `INVALID_ARGUMENT` naming
//! `page_token`. Tokens are signed, not encrypted: the position (an id) is readable.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::cache::ReadError;
use crate::domain::{
    AppId, ClientId, GroupId, PermissionId, ResourcePath, Revision, TenantId, UserId, Valid,
    ValidationError,
};
use crate::store::{Page, PageRequest, PageSecret};

/// The deployment's page-token secret as the services hold it: read from the store while it is
/// prepared, before any request is answered, and the same for as long as the process runs.
#[derive(Clone, Default)]
pub struct SharedSecret(Arc<OnceLock<PageSecret>>);

impl SharedSecret {
    /// Keeps the secret read from the store (a second call changes nothing).
    pub fn set(&self, secret: PageSecret) {
        let _ = self.0.set(secret);
    }

    /// The secret; [`ReadError::Starting`] until the store is prepared.
    pub fn get(&self) -> Result<&PageSecret, ReadError> {
        self.0.get().ok_or(ReadError::Starting)
    }
}

/// Items per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most items a page holds; larger requests are clamped.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The longest page token accepted, in characters (a real one is far shorter).
const MAX_TOKEN_LEN: usize = 2048;
/// The bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// What the tag is for: a key used for page tokens signs nothing else.
const PURPOSE: &[u8] = b"consentry page token v1";

/// Everything that selects the items of one listing: its name, then each field, every one
/// length-prefixed, so that no two queries encode alike whatever their ids contain.
#[derive(Debug, Clone)]
pub struct Listing(Vec<u8>);

impl Listing {
    /// A listing named `name` (one name per RPC), before its fields.
    pub fn new(name: &str) -> Listing {
        let mut listing = Listing(Vec::with_capacity(64));
        put(&mut listing.0, name.as_bytes());
        listing
    }

    /// Adds a field.
    pub fn field(mut self, value: &str) -> Listing {
        put(&mut self.0, value.as_bytes());
        self
    }

    /// Adds a field that may be absent (absent and empty differ).
    pub fn optional(mut self, value: Option<&str>) -> Listing {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                put(&mut self.0, v.as_bytes());
            }
        }
        self
    }
}

/// A listing's position: the key of a page's last item, written into its token and read back
/// (and validated) from it.
pub trait Position: Sized {
    /// Appends the position's fields.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads a position from the front of `bytes`, if they start with a valid one.
    fn read(bytes: &mut &[u8]) -> Option<Self>;
}

macro_rules! id_positions {
    ($($id:ty),+) => {
        $(impl Position for $id {
            fn write(&self, out: &mut Vec<u8>) {
                put(out, self.as_str().as_bytes());
            }
            fn read(bytes: &mut &[u8]) -> Option<Self> {
                <$id>::parse("page_token", take_str(bytes)?).ok()
            }
        })+
    };
}

id_positions!(
    TenantId,
    AppId,
    ClientId,
    UserId,
    GroupId,
    PermissionId,
    ResourcePath
);

impl Position for Revision {
    fn write(&self, out: &mut Vec<u8>) {
        put(out, &self.0.to_be_bytes());
    }
    fn read(bytes: &mut &[u8]) -> Option<Self> {
        let revision = u64::from_be_bytes(take(bytes)?.try_into().ok()?);
        // Revisions are stored as BIGINT.
        i64::try_from(revision)
            .ok()
            .map(|_| Revision::number(revision))
    }
}

impl<A: Position, B: Position> Position for (A, B) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }
    fn read(bytes: &mut &[u8]) -> Option<Self> {
        Some((A::read(bytes)?, B::read(bytes)?))
    }
}

/// Appends `bytes` with their length in front.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Takes one length-prefixed field from the front of `bytes`.
fn take<'b>(bytes: &mut &'b [u8]) -> Option<&'b [u8]> {
    let (len, rest) = bytes.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_be_bytes(*len)).ok()?;
    if len > rest.len() {
        return None;
    }
    let (field, rest) = rest.split_at(len);
    *bytes = rest;
    Some(field)
}

fn take_str<'b>(bytes: &mut &'b [u8]) -> Option<&'b str> {
    std::str::from_utf8(take(bytes)?).ok()
}

/// What a token's tag covers: the purpose, the listing and the position, each length-prefixed.
fn signed(listing: &Listing, position: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(PURPOSE.len() + listing.0.len() + position.len() + 24);
    put(&mut message, PURPOSE);
    put(&mut message, &listing.0);
    put(&mut message, position);
    message
}

fn key(secret: &PageSecret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &secret.0)
}

/// The page a request asks for. `listing` names everything that selects the items (tenant,
/// filters, viewer) and must be the same for every page of one listing.
pub fn page_request<K: Position>(
    secret: &PageSecret,
    page_size: i32,
    page_token: &str,
    listing: &Listing,
) -> Valid<PageRequest<K>> {
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
    let after = position(secret, page_token, listing).ok_or_else(|| {
        ValidationError::new(
            "page_token",
            "is not a token from a previous page of this query",
        )
    })?;
    Ok(PageRequest {
        after: Some(after),
        limit,
    })
}

/// The position in `token`, if this deployment minted it for exactly `listing`.
fn position<K: Position>(secret: &PageSecret, token: &str, listing: &Listing) -> Option<K> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let (tag, position) = bytes.split_at_checked(TAG_LEN)?;
    hmac::verify(&key(secret), &signed(listing, position), tag).ok()?;
    let mut rest = position;
    let after = K::read(&mut rest)?;
    rest.is_empty().then_some(after)
}

/// The token for the page after `page`; empty on the last page.
pub fn next_page_token<T, K: Position>(
    secret: &PageSecret,
    page: &Page<T, K>,
    listing: &Listing,
) -> String {
    match &page.next {
        None => String::new(),
        Some(after) => {
            let mut position = Vec::new();
            after.write(&mut position);
            let tag = hmac::sign(&key(secret), &signed(listing, &position));
            let mut bytes = tag.as_ref().to_vec();
            bytes.extend_from_slice(&position);
            URL_SAFE_NO_PAD.encode(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: PageSecret = PageSecret([7; 32]);

    fn page<K>(next: K) -> Page<u8, K> {
        Page {
            items: vec![1],
            next: Some(next),
        }
    }

    fn user(id: &str) -> UserId {
        UserId::parse("user_id", id).unwrap()
    }

    fn rights(tenant: &str, user: &str) -> Listing {
        Listing::new("rights").field(tenant).field(user)
    }

    #[test]
    fn sizes_default_and_clamp() {
        let q = Listing::new("q");
        let size = |n| page_request::<UserId>(&SECRET, n, "", &q);
        assert_eq!(size(0).unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(size(7).unwrap().limit, 7);
        assert_eq!(size(10_000).unwrap().limit, MAX_PAGE_SIZE);
        assert_eq!(size(-1).unwrap_err().field, "page_size");
    }

    #[test]
    fn tokens_round_trip_only_with_the_same_query_and_secret() {
        let token = next_page_token(&SECRET, &page(user("after:me")), &rights("a", "b:c"));
        let got = page_request::<UserId>(&SECRET, 10, &token, &rights("a", "b:c")).unwrap();
        assert_eq!(got.after, Some(user("after:me")));
        // Fields that join to the same text with `:` are different queries.
        let other = page_request::<UserId>(&SECRET, 10, &token, &rights("a:b", "c"));
        assert_eq!(other.unwrap_err().field, "page_token");
        // Another deployment's secret.
        let elsewhere =
            page_request::<UserId>(&PageSecret([8; 32]), 10, &token, &rights("a", "b:c"));
        assert_eq!(elsewhere.unwrap_err().field, "page_token");
        // Another listing whose position has the same type and text.
        let users = Listing::new("users").field("a").field("b:c");
        assert!(page_request::<UserId>(&SECRET, 10, &token, &users).is_err());
        let empty = Page::<u8, UserId> {
            items: vec![],
            next: None,
        };
        assert_eq!(next_page_token(&SECRET, &empty, &users), "");
    }

    #[test]
    fn absent_and_empty_optional_fields_differ() {
        let absent = Listing::new("audit").optional(None).field("x");
        let empty = Listing::new("audit").optional(Some("")).field("x");
        let token = next_page_token(&SECRET, &page(Revision::number(4)), &absent);
        assert!(page_request::<Revision>(&SECRET, 1, &token, &absent).is_ok());
        assert!(page_request::<Revision>(&SECRET, 1, &token, &empty).is_err());
    }

    #[test]
    fn every_changed_byte_and_every_forgery_is_refused() {
        let q = rights("a", "b");
        let token = next_page_token(&SECRET, &page(user("bob")), &q);
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&flipped);
            assert!(
                page_request::<UserId>(&SECRET, 1, &forged, &q).is_err(),
                "byte {i} flipped"
            );
        }
        // A position with a NUL, with the real tag or none: the tag does not match.
        let mut nul = bytes[..TAG_LEN].to_vec();
        put(&mut nul, b"bob\0");
        let forged = [
            URL_SAFE_NO_PAD.encode(&nul),
            URL_SAFE_NO_PAD.encode(&nul[TAG_LEN..]),
        ];
        for forged in forged {
            assert!(page_request::<UserId>(&SECRET, 1, &forged, &q).is_err());
        }
        // Truncated, extended, too long, not base64.
        let extended = format!("{token}AA");
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            &token[..token.len() - 1],
            extended.as_str(),
            long.as_str(),
            "garbage!",
            "",
        ] {
            let got = page_request::<UserId>(&SECRET, 1, bad, &q);
            assert!(bad.is_empty() == got.is_ok(), "{bad:?}");
        }
    }

    #[test]
    fn even_a_signed_position_must_be_valid_for_its_listing() {
        // A tag over a position that is no valid user id (as a leaked key could make) is still
        // refused: positions are parsed as the listing's key type.
        let q = rights("a", "b");
        let mut position = Vec::new();
        put(&mut position, b"bob\0");
        let tag = hmac::sign(&key(&SECRET), &signed(&q, &position));
        let mut bytes = tag.as_ref().to_vec();
        bytes.extend_from_slice(&position);
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(page_request::<UserId>(&SECRET, 1, &token, &q).is_err());
        // And a revision beyond what the store keeps.
        let mut position = Vec::new();
        put(&mut position, &u64::MAX.to_be_bytes());
        let tag = hmac::sign(&key(&SECRET), &signed(&q, &position));
        let mut bytes = tag.as_ref().to_vec();
        bytes.extend_from_slice(&position);
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(page_request::<Revision>(&SECRET, 1, &token, &q).is_err());
    }

    #[test]
    fn grant_keys_round_trip() {
        let q = Listing::new("grants");
        let key = (
            GroupId::parse("g", "g:1").unwrap(),
            PermissionId::parse("p", "p:2").unwrap(),
        );
        let token = next_page_token(&SECRET, &page(key.clone()), &q);
        let got = page_request::<(GroupId, PermissionId)>(&SECRET, 5, &token, &q).unwrap();
        assert_eq!(got.after, Some(key));
    }
}
