//! Who is calling: `authorization: Bearer <key>` looked up by the key's hash, the client's
//! capabilities and tenants, and the acting user of `x-consentry-user` (honoured only for a
//! client with `assert_user`).

use std::sync::Arc;

use base64::Engine;
use tonic::Request;

use super::status::ServiceError;

use crate::cache::{At, Caches};
use crate::domain::{Caller, Capability, KeyHash, UserId, ValidationError};

/// The metadata header naming the acting user (or the viewer, for external permission queries).
pub const USER_HEADER: &str = "x-consentry-user";

/// The prefix of every key consentry issues, so a leaked key is recognisable.
const KEY_PREFIX: &str = "csk_";

/// A new random key: 256 bits from the operating system, base64url-encoded.
pub fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The hash a key is stored and looked up by, in hex.
pub fn hash_key(key: &str) -> String {
    KeyHash::of(key).hex()
}

/// Who a call comes from, once authenticated.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated client, shared with the cache.
    pub caller: Arc<Caller>,
    /// The acting user from `x-consentry-user`, if named (only with `assert_user`).
    pub acting_user: Option<UserId>,
}

/// Authenticates calls against the store's clients, through the cache (a revocation reaches it
/// through the change log like any other write).
#[derive(Clone)]
pub struct Authenticator {
    caches: Arc<Caches>,
}

impl Authenticator {
    /// An authenticator over the caches.
    pub fn new(caches: Arc<Caches>) -> Self {
        Self { caches }
    }

    /// The client behind the request's key, as the cache knows it at `at`: `UNAUTHENTICATED` for
    /// a missing, unknown or revoked key.
    pub async fn caller<T>(
        &self,
        request: &Request<T>,
        at: At,
    ) -> Result<Arc<Caller>, ServiceError> {
        let header = request.metadata().get("authorization");
        self.caller_by(header.map(|h| h.as_bytes()), at).await
    }

    /// The client behind an `authorization` header's value (gRPC metadata or HTTP), as the cache
    /// knows it at `at`: `UNAUTHENTICATED` for a missing, unknown or revoked key.
    pub async fn caller_by(
        &self,
        header: Option<&[u8]>,
        at: At,
    ) -> Result<Arc<Caller>, ServiceError> {
        let header = header.ok_or(ServiceError::Unauthenticated(
            "missing `authorization: Bearer <key>`",
        ))?;
        let key = std::str::from_utf8(header)
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(ServiceError::Unauthenticated(
                "the authorization header must be `Bearer <key>`",
            ))?;
        let hash = KeyHash::of(key);
        let caller = self.caches.client(at, &hash).await?;
        caller.ok_or(ServiceError::Unauthenticated("unknown or revoked key"))
    }

    /// Authenticates the request at `at`, requires `capability`, and reads the acting user.
    pub async fn context<T>(
        &self,
        request: &Request<T>,
        capability: Capability,
        at: At,
    ) -> Result<CallContext, ServiceError> {
        let caller = self.caller(request, at).await?;
        caller.require(capability)?;
        let acting_user = acting_user(request, &caller)?;
        Ok(CallContext {
            caller,
            acting_user,
        })
    }
}

/// The acting user named in `x-consentry-user`: `PERMISSION_DENIED` from a client without
/// `assert_user`, `INVALID_ARGUMENT` if it is not a user id.
fn acting_user<T>(request: &Request<T>, caller: &Caller) -> Result<Option<UserId>, ServiceError> {
    let Some(value) = request.metadata().get(USER_HEADER) else {
        return Ok(None);
    };
    caller.require_may_assert_user()?;
    let text = value
        .to_str()
        .map_err(|_| ValidationError::new(USER_HEADER, "is not text"))?;
    Ok(Some(UserId::parse(USER_HEADER, text)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), hash_key(&b));
    }
}
