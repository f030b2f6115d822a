//! Context tokens (docs/rules.md §8): compact JWS (RFC 7515) signed with Ed25519 (`alg: EdDSA`,
//! RFC 8037), their claims, how IssueContextToken signs them, and the verifier a downstream
//! service runs offline ([`verify`], told what to expect by [`Expected`]) with the rights rule over
//! the claims ([`Claims::level_at`], [`Claims::allows`]). `consentry token verify` is this verifier
//! on the command line.
//!
//! No JWT crate: the format needs base64url, JSON and one signature scheme, which `base64`,
//! `serde_json` and ring (already the TLS stack's cryptography) give with no RSA and no
//! algorithm to negotiate; [`ed25519`] keeps verification strict.

pub mod ed25519;
pub mod keys;
mod pkcs8;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::token::{RightAt, TokenGrant, allows_in, level_in};
use crate::domain::{AppId, PermissionName, ResourcePath, Revision, Right, TenantId};
pub use keys::{KeyFileError, KeyRing, SigningKeys, generate_pem, kid};

/// The ttl of a token when the request asks for none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest ttl a token may have.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The longest audience, in bytes.
pub const MAX_AUDIENCE_BYTES: usize = 256;
/// The issuer tokens name (`iss`) and verifiers expect unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "consentry";
/// The longest issuer, in bytes.
pub const MAX_ISSUER_BYTES: usize = 256;

/// Checks an issuer name (`--token-issuer`, `--issuer`): 1–256 printable ASCII characters
/// without spaces. The problem does not quote the value.
pub fn check_issuer(value: &str) -> Result<(), &'static str> {
    if value.is_empty()
        || value.len() > MAX_ISSUER_BYTES
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("must be 1 to 256 printable ASCII characters without spaces");
    }
    Ok(())
}

/// One public key of a JWK set (RFC 7517, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// `EdDSA`.
    #[serde(default)]
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use", default)]
    pub use_: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.to_owned(),
            alg: "EdDSA".to_owned(),
            use_: "sig".to_owned(),
        }
    }

    /// The key as this verifier can use it: an Ed25519 signing key with a `kid` and a valid
    /// `x`; `None` for any other key of a set.
    fn usable(value: &serde_json::Value) -> Option<Self> {
        let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
        let fits = jwk.kty == "OKP"
            && jwk.crv == "Ed25519"
            && !jwk.kid.is_empty()
            && (jwk.alg.is_empty() || jwk.alg == "EdDSA")
            && (jwk.use_.is_empty() || jwk.use_ == "sig");
        (fits && jwk.public_key().is_some()).then_some(jwk)
    }

    /// A skipped key in a few words: its `kty` and `kid`, each quoted short.
    fn describe(value: &serde_json::Value) -> String {
        let member = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| "none".to_owned(), quote)
        };
        format!("a key of kty {} (kid {})", member("kty"), member("kid"))
    }

    /// The Ed25519 public key of `x`, if it is one's size (32 bytes; whether they encode a point
    /// is for the signature check to find).
    fn public_key(&self) -> Option<[u8; 32]> {
        URL_SAFE_NO_PAD.decode(&self.x).ok()?.try_into().ok()
    }
}

/// A JWK set: what GetSigningKeys answers and what a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses the JSON text of a JWK set, key by key: a key that is not an Ed25519 signing key
    /// (another `kty` such as RSA or EC, another curve, algorithm or use, a missing `kid` or an
    /// `x` that is not 32 bytes) is skipped, as RFC 7517 §5 asks, so a set shared with
    /// other issuers still works. Text that is not a JWK set, or a set left with no usable key,
    /// is [`VerifyError::BadJwks`] saying which.
    pub fn parse(json: &str) -> Result<Self, VerifyError> {
        let bad = |why: String| VerifyError::BadJwks(why);
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            bad(format!(
                "it is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let Some(keys) = value.get("keys").and_then(serde_json::Value::as_array) else {
            return Err(bad("it is not a JWK set: it has no `keys` array".to_owned()));
        };
        let mut usable = Vec::new();
        let mut skipped = Vec::new();
        for key in keys {
            match Jwk::usable(key) {
                Some(jwk) => usable.push(jwk),
                None => skipped.push(Jwk::describe(key)),
            }
        }
        if usable.is_empty() {
            let skipped = if skipped.is_empty() {
                "it has no keys".to_owned()
            } else {
                format!("skipped {}", skipped.join(", "))
            };
            return Err(bad(format!(
                "it holds no usable key (kty OKP, crv Ed25519, with kid and x): {skipped}"
            )));
        }
        Ok(Self { keys: usable })
    }

    /// The JSON text of the set.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `act`: who acts on behalf of the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActClaim {
    /// The signed-in user.
    pub sub: String,
}

/// The claims of a context token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer (`--token-issuer`).
    pub iss: String,
    /// The audience the caller named.
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// A random id.
    pub jti: String,
    /// The tenant.
    pub tid: String,
    /// The application.
    pub app: String,
    /// The user whose rights count; absent for an app-only token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The signed-in user, when acting on behalf of `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<ActClaim>,
    /// The effective scopes.
    pub scp: Vec<String>,
    /// The policy the check applied: `USER_AND_APP`, `USER_ONLY` or `APP_ONLY`.
    pub pol: String,
    /// The revision the token was evaluated at (a token for `at_least_as_fresh`).
    pub rev: String,
    /// The rights under the token's resource (see [`Claims::level_at`]).
    #[serde(with = "wire_rights")]
    pub rights: Vec<RightAt>,
}

impl Claims {
    /// The level the token allows at `path`: the highest listed at `path` or an ancestor. Exact
    /// for paths under the resource the token was issued for; never more than the engine's
    /// answer elsewhere.
    pub fn level_at(&self, path: &ResourcePath) -> Option<Right> {
        level_in(&self.rights, path)
    }

    /// Whether the token allows `permission` (a level or a fine-grained permission) at `path`.
    pub fn allows(&self, path: &ResourcePath, permission: PermissionName) -> bool {
        allows_in(&self.rights, path, permission)
    }
}

/// `rights` on the wire: `[{"path": "/hr", "level": "READ"}, …]`.
mod wire_rights {
    use super::*;
    use serde::de::Error as _;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        path: String,
        level: String,
    }

    pub fn serialize<S: serde::Serializer>(rights: &[RightAt], s: S) -> Result<S::Ok, S::Error> {
        let entries: Vec<Entry> = rights
            .iter()
            .map(|r| Entry {
                path: r.path.to_string(),
                level: r.level.as_str().to_owned(),
            })
            .collect();
        entries.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RightAt>, D::Error> {
        Vec::<Entry>::deserialize(d)?
            .into_iter()
            .map(|e| {
                let path = ResourcePath::parse("rights.path", e.path).map_err(D::Error::custom)?;
                let level = Right::from_name(&e.level)
                    .ok_or_else(|| D::Error::custom(format!("{:?} is not a level", e.level)))?;
                Ok(RightAt { path, level })
            })
            .collect()
    }
}

/// A value taken from a token or a key set, quoted for an error: at most a short prefix
/// (`domain::error::quoted`), so a hostile token cannot make a long message.
fn quote(value: &str) -> String {
    crate::domain::error::quoted(value).to_string()
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS: three base64url parts, a JSON header.
    #[error("not a compact JWS: {0}")]
    Malformed(String),
    /// The header names an algorithm other than EdDSA (`none` included); the algorithm, quoted.
    #[error("algorithm {0} is not accepted; only EdDSA is")]
    Algorithm(String),
    /// The header has `crit`: it names extensions that must be understood, and this verifier
    /// understands none (RFC 7515 §4.1.11); the member, quoted.
    #[error("the header has crit ({0}); this verifier understands no critical extension")]
    CriticalHeader(String),
    /// No key of the set has the header's `kid`; the kid, quoted.
    #[error("no published key has kid {0}")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The payload is not the claims of a context token.
    #[error("the claims are not those of a context token: {0}")]
    BadClaims(String),
    /// `exp` is not after now.
    #[error("expired at {exp} (now {now}, seconds since the Unix epoch)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time it was verified at.
        now: i64,
    },
    /// `aud` is not the audience the verifier expects.
    #[error("issued for audience {got}, not {expected}")]
    WrongAudience {
        /// The audience the verifier expects, quoted.
        expected: String,
        /// The token's `aud`, quoted.
        got: String,
    },
    /// `iss` is not the issuer the verifier expects.
    #[error("issued by {got}, not {expected}")]
    WrongIssuer {
        /// The issuer the verifier expects, quoted.
        expected: String,
        /// The token's `iss`, quoted.
        got: String,
    },
    /// `tid` is not the tenant the verifier was told to expect.
    #[error("issued for tenant {got}, not {expected}")]
    WrongTenant {
        /// The tenant the verifier expects, quoted.
        expected: String,
        /// The token's `tid`, quoted.
        got: String,
    },
    /// `app` is not the application the verifier was told to expect.
    #[error("issued to app {got}, not {expected}")]
    WrongApp {
        /// The application the verifier expects, quoted.
        expected: String,
        /// The token's `app`, quoted.
        got: String,
    },
    /// The JWK set cannot be used.
    #[error("the JWK set cannot be used: {0}")]
    BadJwks(String),
}

impl VerifyError {
    /// A fixed token naming the reason, for scripts and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "MALFORMED",
            VerifyError::Algorithm(_) => "ALGORITHM_NOT_ACCEPTED",
            VerifyError::CriticalHeader(_) => "CRITICAL_HEADER_NOT_ACCEPTED",
            VerifyError::UnknownKey(_) => "UNKNOWN_KEY",
            VerifyError::BadSignature => "BAD_SIGNATURE",
            VerifyError::BadClaims(_) => "BAD_CLAIMS",
            VerifyError::Expired { .. } => "EXPIRED",
            VerifyError::WrongAudience { .. } => "WRONG_AUDIENCE",
            VerifyError::WrongIssuer { .. } => "WRONG_ISSUER",
            VerifyError::WrongTenant { .. } => "WRONG_TENANT",
            VerifyError::WrongApp { .. } => "WRONG_APP",
            VerifyError::BadJwks(_) => "BAD_JWKS",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: String,
    /// `Some` whenever the member is present, whatever its value (`null` included).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    crit: Option<serde_json::Value>,
}

/// A member that is present, as `Some` even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// What a verifier expects of a token, besides a signature by a key of its JWK set and an `exp`
/// in the future: its own audience, the issuer, and, when it serves one tenant or one
/// application, those. `Expected::new(audience)` expects [`DEFAULT_ISSUER`] and any tenant and
/// app; the `with_*` methods narrow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `aud` must equal it: the verifier's own audience.
    pub audience: String,
    /// `iss` must equal it.
    pub issuer: String,
    /// When set, `tid` must equal it.
    pub tenant: Option<String>,
    /// When set, `app` must equal it.
    pub app: Option<String>,
}

impl Expected {
    /// Tokens for `audience` from [`DEFAULT_ISSUER`], of any tenant and application.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            issuer: DEFAULT_ISSUER.to_owned(),
            tenant: None,
            app: None,
        }
    }

    /// The same, from `issuer` (the server's `--token-issuer`).
    pub fn with_issuer(self, issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            ..self
        }
    }

    /// The same, only for tenant `tenant`.
    pub fn with_tenant(self, tenant: impl Into<String>) -> Self {
        Self {
            tenant: Some(tenant.into()),
            ..self
        }
    }

    /// The same, only for application `app`.
    pub fn with_app(self, app: impl Into<String>) -> Self {
        Self {
            app: Some(app.into()),
            ..self
        }
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Verifies a compact JWS context token offline: the header (`alg: EdDSA`, no `crit`, a `kid`
/// the set publishes), the Ed25519 signature over `header.payload`, the claims, `exp` after
/// `now`, then `aud`, `iss` and, when expected, `tid` and `app` as `expected` says. What a
/// downstream service does before it trusts a token.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    expected: &Expected,
    now: SystemTime,
) -> Result<Claims, VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    let mut parts = token.trim().split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("it does not have three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("the {what} is not base64url")))
    };
    let header: Header = serde_json::from_slice(&decode(header_b64, "header")?)
        .map_err(|_| malformed("the header is not a JOSE header"))?;
    if header.alg != "EdDSA" {
        return Err(VerifyError::Algorithm(quote(&header.alg)));
    }
    if let Some(crit) = &header.crit {
        return Err(VerifyError::CriticalHeader(quote(&crit.to_string())));
    }
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == header.kid)
        .ok_or_else(|| VerifyError::UnknownKey(quote(&header.kid)))?;
    // A set built by hand rather than parsed may hold a key of another kind under this kid.
    let key = (jwk.kty == "OKP" && jwk.crv == "Ed25519")
        .then(|| jwk.public_key())
        .flatten()
        .ok_or_else(|| {
            VerifyError::BadJwks(format!(
                "key {} is not an Ed25519 public key",
                quote(&jwk.kid)
            ))
        })?;
    let signature: [u8; 64] = decode(signature_b64, "signature")?
        .try_into()
        .map_err(|_| VerifyError::BadSignature)?;
    let signed = &token.trim()[..header_b64.len() + 1 + payload_b64.len()];
    if !ed25519::verify_strict(&key, signed.as_bytes(), &signature) {
        return Err(VerifyError::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&decode(payload_b64, "payload")?)
        .map_err(|e| VerifyError::BadClaims(e.to_string()))?;
    let now = unix_seconds(now);
    if claims.exp <= now {
        return Err(VerifyError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.aud != expected.audience {
        return Err(VerifyError::WrongAudience {
            expected: quote(&expected.audience),
            got: quote(&claims.aud),
        });
    }
    if claims.iss != expected.issuer {
        return Err(VerifyError::WrongIssuer {
            expected: quote(&expected.issuer),
            got: quote(&claims.iss),
        });
    }
    if let Some(tenant) = expected.tenant.as_deref().filter(|t| *t != claims.tid) {
        return Err(VerifyError::WrongTenant {
            expected: quote(tenant),
            got: quote(&claims.tid),
        });
    }
    if let Some(app) = expected.app.as_deref().filter(|a| *a != claims.app) {
        return Err(VerifyError::WrongApp {
            expected: quote(app),
            got: quote(&claims.app),
        });
    }
    Ok(claims)
}

/// Signs `claims` with the first key of `keys`: the compact JWS.
pub fn sign(claims: &Claims, keys: &SigningKeys) -> String {
    let header = Header {
        alg: "EdDSA".to_owned(),
        typ: Some("JWT".to_owned()),
        kid: keys.signing_kid().to_owned(),
        crit: None,
    };
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json(&header)),
        URL_SAFE_NO_PAD.encode(json(claims))
    );
    let signature = keys.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// The JSON of a header or claims (plain structs of strings and numbers: always serialisable).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// What a token is about, beyond its grant: validated request fields.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The application.
    pub app_id: AppId,
    /// The audience.
    pub audience: String,
    /// How long the token lives.
    pub ttl: Duration,
}

/// Validates an audience: 1–256 bytes of printable ASCII.
pub fn parse_audience(value: &str) -> crate::domain::Valid<String> {
    use crate::domain::ValidationError;
    if value.is_empty() {
        return Err(ValidationError::new("audience", "is required"));
    }
    if value.len() > MAX_AUDIENCE_BYTES {
        return Err(ValidationError::new(
            "audience",
            format_args!(
                "is {} bytes long; at most {MAX_AUDIENCE_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ValidationError::new(
            "audience",
            format_args!(
                "must be printable ASCII (got {})",
                crate::domain::error::quoted(value)
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Validates `ttl_seconds`: 0 is the default, else 1 to 3600.
pub fn parse_ttl(seconds: i64) -> crate::domain::Valid<Duration> {
    match seconds {
        0 => Ok(DEFAULT_TTL),
        s if s >= 1 && s <= MAX_TTL.as_secs() as i64 => Ok(Duration::from_secs(s as u64)),
        s => Err(crate::domain::ValidationError::new(
            "ttl_seconds",
            format_args!(
                "is {s}; use 1 to {} seconds, or 0 for the default {}",
                MAX_TTL.as_secs(),
                DEFAULT_TTL.as_secs()
            ),
        )),
    }
}

/// Signs context tokens with the keys of a [`KeyRing`] as `issuer`.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: std::sync::Arc<KeyRing>,
    issuer: String,
}

impl TokenIssuer {
    /// An issuer signing with `keys` under the name `issuer`.
    pub fn new(keys: std::sync::Arc<KeyRing>, issuer: String) -> Self {
        Self { keys, issuer }
    }

    /// The published keys, as a JWK set.
    pub fn jwks(&self) -> Jwks {
        self.keys.keys().jwks()
    }

    /// The token for `grant`, issued `now` at `revision`, and when it expires.
    pub fn issue(
        &self,
        request: &TokenRequest,
        grant: TokenGrant,
        revision: Revision,
        now: SystemTime,
    ) -> anyhow::Result<(String, SystemTime)> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| anyhow::anyhow!("no randomness for a jti: {e}"))?;
        let iat = unix_seconds(now);
        let expires = UNIX_EPOCH + Duration::from_secs(iat.max(0) as u64) + request.ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: request.audience.clone(),
            iat,
            exp: iat + request.ttl.as_secs() as i64,
            jti: URL_SAFE_NO_PAD.encode(jti),
            tid: request.tenant_id.to_string(),
            app: request.app_id.to_string(),
            sub: grant.subject.map(|u| u.to_string()),
            act: grant.actor.map(|u| ActClaim { sub: u.to_string() }),
            scp: grant.scopes.iter().map(|s| s.to_string()).collect(),
            pol: grant.policy.as_str().to_owned(),
            rev: revision.token(),
            rights: grant.rights,
        };
        Ok((sign(&claims, &self.keys.keys()), expires))
    }
}

#[cfg(test)]
mod tests;
