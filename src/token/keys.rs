//! The signing keys of context tokens: a PEM file of one or more Ed25519 PKCS#8 private keys
//! (`--signing-key-file`), the first of which signs and all of which are published as a JWK set
//! (RFC 7517, `kty: OKP`, `crv: Ed25519`). Each key's `kid` is its RFC 7638 JWK thumbprint
//! (SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":…}`, base64url without padding), so the same
//! key has the same id on every instance and after every restart.
//!
//! Invariant: only a key file that loaded whole is ever used; a change into something unusable
//! (a half-written rotation, a key of another kind) keeps the last good set and is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::pem::{PemObject, SectionKind};
use tokio::sync::watch;

use super::pkcs8::{self, PrivateKeyInfo};
use super::{Jwk, Jwks};
use crate::reload::Reload;

/// Why a key file cannot be used; the message names the flag and the file.
#[derive(Debug, thiserror::Error)]
#[error("--signing-key-file: {path}: {problem}")]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// The RFC 7638 thumbprint of an Ed25519 public key: the `kid` it is published under.
pub fn kid(public_key: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    // The required members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()))
}

/// The SHA-256 digest of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().unwrap_or_default()
}

/// The public key of a key pair, as the 32 bytes it always is.
fn public_key(key: &Ed25519KeyPair) -> [u8; 32] {
    key.public_key().as_ref().try_into().unwrap_or_default()
}

/// A set of signing keys, in file order: the first signs.
pub struct SigningKeys {
    keys: Vec<(String, Ed25519KeyPair)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("SigningKeys").field("kids", &kids).finish()
    }
}

impl SigningKeys {
    /// The keys of a PEM text: every section must be a PKCS#8 `PRIVATE KEY` of an Ed25519
    /// key, and there must be at least one. The problem says what is wrong, never the key.
    pub fn parse(pem: &[u8]) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, section) in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem).enumerate() {
            let n = i + 1;
            let (kind, der) = section
                .map_err(|e| format!("is not valid PEM: {}", crate::reload::pem_problem(&e)))?;
            if kind != SectionKind::PrivateKey {
                return Err(format!(
                    "PEM section {n} is {}; only PRIVATE KEY sections (PKCS#8) of Ed25519 keys \
                     are allowed",
                    section_name(kind)
                ));
            }
            let key = ed25519_key(&der).map_err(|problem| format!("PEM section {n} {problem}"))?;
            let id = kid(&public_key(&key));
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(format!("PEM section {n} repeats the key {id}"));
            }
            keys.push((id, key));
        }
        if keys.is_empty() {
            let encrypted = pem
                .windows(ENCRYPTED.len())
                .any(|w| w == ENCRYPTED.as_bytes());
            return Err(if encrypted {
                "holds an ENCRYPTED PRIVATE KEY; consentry reads unencrypted keys only (decrypt it \
                 with `openssl pkey -in FILE -out NEW`, keep NEW readable by consentry alone, or \
                 generate one with `consentry keygen`)"
                    .into()
            } else {
                "holds no PEM private key (generate one with `consentry keygen`)".into()
            });
        }
        Ok(Self { keys })
    }

    /// Reads and parses a key file.
    pub fn read(path: &Path) -> Result<(Self, [u8; 32]), KeyFileError> {
        let fail = |problem: String| KeyFileError {
            path: path.to_owned(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it ({e})")))?;
        let digest = sha256(&bytes);
        Ok((Self::parse(&bytes).map_err(fail)?, digest))
    }

    /// The `kid` of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key's id, in file order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    /// Signs `message` with the first key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.keys[0]
            .1
            .sign(message)
            .as_ref()
            .try_into()
            .unwrap_or([0; 64])
    }

    /// The public keys as a JWK set, in file order.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .map(|(kid, key)| Jwk::ed25519(kid, &public_key(key)))
                .collect(),
        }
    }
}

/// The start of an encrypted PKCS#8 section, which the PEM reader skips as unknown.
const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// A PEM section's kind as its label says it, for a message.
fn section_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "a CERTIFICATE",
        SectionKind::PublicKey => "a PUBLIC KEY",
        SectionKind::RsaPrivateKey => "an RSA PRIVATE KEY",
        SectionKind::PrivateKey => "a PRIVATE KEY",
        SectionKind::EcPrivateKey => "an EC PRIVATE KEY",
        SectionKind::Crl => "an X509 CRL",
        SectionKind::Csr => "a CERTIFICATE REQUEST",
        _ => "a section of another kind",
    }
}

/// The Ed25519 key of a PKCS#8 document (v1, as `openssl genpkey` writes, or v2 with the public
/// key, as `consentry keygen` writes); else why not, in words: the algorithm it is for when it is
/// another one, else what is malformed.
fn ed25519_key(der: &[u8]) -> Result<Ed25519KeyPair, String> {
    let info = PrivateKeyInfo::read(der)
        .map_err(|why| format!("is not a well-formed PKCS#8 private key ({why})"))?;
    let algorithm = match info.algorithm.as_str() {
        pkcs8::ED25519 => {
            let malformed =
                |why: &str| format!("is an Ed25519 key whose key data is malformed ({why})");
            if info.parameters {
                return Err(malformed("PKCS#8 algorithm parameters malformed"));
            }
            // ring checks the nested OCTET STRING of the seed and, in a v2 document, that the
            // public key is the seed's.
            return Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| malformed("PKCS#8 cryptographic key data malformed"));
        }
        "1.2.840.10045.2.1" => "an EC key".to_owned(),
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA key".to_owned(),
        "1.3.101.113" => "an Ed448 key".to_owned(),
        "1.3.101.110" => "an X25519 key".to_owned(),
        "1.3.101.111" => "an X448 key".to_owned(),
        other => format!("a key of the algorithm {other}"),
    };
    Err(format!("is {algorithm}, not an Ed25519 key"))
}

/// A new Ed25519 private key as a PKCS#8 v2 PEM text (what `consentry keygen` writes).
pub fn generate_pem() -> anyhow::Result<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("no randomness for a key"))?;
    let text = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The signing keys in use: the key file's, re-read while serving, or (for `--demo`) a
/// throwaway key held only in memory.
pub struct KeyRing {
    /// The key file; `None` for a throwaway key, which is never re-read.
    path: Option<PathBuf>,
    current: ArcSwap<SigningKeys>,
    digest: std::sync::Mutex<[u8; 32]>,
}

impl KeyRing {
    /// Loads the key file; the error names the flag and the file.
    pub fn load(path: PathBuf) -> Result<Arc<KeyRing>, KeyFileError> {
        let (keys, digest) = SigningKeys::read(&path)?;
        tracing::info!(path = %path.display(), kids = ?keys.kids().collect::<Vec<_>>(), "context token signing keys loaded");
        Ok(Arc::new(KeyRing {
            path: Some(path),
            current: ArcSwap::from_pointee(keys),
            digest: std::sync::Mutex::new(digest),
        }))
    }

    /// A new random key held only in memory, never written anywhere: what `--demo` signs with,
    /// so the demo's public client key can never mint a token that a real verifier trusts.
    pub fn throwaway() -> anyhow::Result<Arc<KeyRing>> {
        let pem = generate_pem()?;
        let keys = SigningKeys::parse(pem.as_bytes()).map_err(anyhow::Error::msg)?;
        tracing::info!(
            kid = keys.signing_kid(),
            "context tokens are signed with a throwaway key made for this run"
        );
        Ok(Arc::new(KeyRing {
            path: None,
            current: ArcSwap::from_pointee(keys),
            digest: std::sync::Mutex::new([0; 32]),
        }))
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<SigningKeys> {
        self.current.load_full()
    }

    /// Re-reads the file; a change that loads whole replaces the keys in use. A throwaway key
    /// has no file and never changes.
    pub fn reload(&self) -> Reload {
        let Some(path) = &self.path else {
            return Reload::Unchanged;
        };
        let outcome = match SigningKeys::read(path) {
            Ok((keys, digest)) => {
                let mut held = self.digest.lock().unwrap_or_else(|p| p.into_inner());
                if *held == digest {
                    return Reload::Unchanged;
                }
                tracing::info!(
                    path = %path.display(),
                    kids = ?keys.kids().collect::<Vec<_>>(),
                    "signing key file changed; new tokens are signed with its first key"
                );
                self.current.store(Arc::new(keys));
                *held = digest;
                Reload::Applied
            }
            Err(e) => {
                let mut held = self.digest.lock().unwrap_or_else(|p| p.into_inner());
                // Report an unusable file once per change of its contents, not on every look.
                let digest: [u8; 32] = std::fs::read(path).map(|b| sha256(&b)).unwrap_or_default();
                if *held == digest {
                    return Reload::Unchanged;
                }
                *held = digest;
                tracing::warn!(error = %e, "signing key file changed but cannot be used; still signing with the previous keys");
                Reload::Refused
            }
        };
        if let Some(result) = outcome.result() {
            metrics::counter!("consentry_signing_key_reloads_total", "result" => result)
                .increment(1);
        }
        outcome
    }

    /// Re-reads the file every `interval` until `stop` (a throwaway key has none to re-read).
    pub fn follow(
        self: Arc<Self>,
        interval: Duration,
        stop: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.path.as_ref()?;
        Some(crate::reload::reread_every(interval, stop, move || {
            self.reload()
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_key_parses_and_its_kid_is_its_thumbprint() {
        let pem = generate_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let keys = SigningKeys::parse(pem.as_bytes()).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 1);
        assert_eq!(jwks.keys[0].kid, keys.signing_kid());
        assert_eq!(keys.signing_kid().len(), 43, "a base64url SHA-256");
    }

    #[test]
    fn the_rfc_8037_example_key_has_the_rfc_thumbprint() {
        // RFC 8037 appendix A.1 (the key) and A.3 (its RFC 7638 thumbprint).
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            kid(&x.try_into().unwrap()),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn several_keys_sign_with_the_first_and_publish_all() {
        let (a, b) = (generate_pem().unwrap(), generate_pem().unwrap());
        let keys = SigningKeys::parse(format!("{b}{a}").as_bytes()).unwrap();
        let first = SigningKeys::parse(b.as_bytes()).unwrap();
        assert_eq!(keys.signing_kid(), first.signing_kid());
        assert_eq!(keys.kids().count(), 2);
        assert!(SigningKeys::parse(format!("{a}{a}").as_bytes()).is_err());
    }

    #[test]
    fn a_changed_file_is_applied_and_an_unusable_one_keeps_the_last_good_keys() {
        let dir = std::env::temp_dir().join(format!("consentry-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.pem");
        let (one, two) = (generate_pem().unwrap(), generate_pem().unwrap());
        std::fs::write(&path, &one).unwrap();
        let ring = KeyRing::load(path.clone()).unwrap();
        let first = ring.keys().signing_kid().to_owned();
        assert_eq!(ring.reload(), Reload::Unchanged);
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nhalf a rota").unwrap();
        assert_eq!(ring.reload(), Reload::Refused);
        assert_eq!(ring.reload(), Reload::Unchanged, "reported once per change");
        assert_eq!(ring.keys().signing_kid(), first);
        std::fs::write(&path, format!("{two}{one}")).unwrap();
        assert_eq!(ring.reload(), Reload::Applied);
        let keys = ring.keys();
        assert_ne!(keys.signing_kid(), first);
        assert_eq!(keys.kids().nth(1), Some(first.as_str()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            ring.reload(),
            Reload::Refused,
            "a missing file keeps the keys too"
        );
        assert_eq!(ring.keys().kids().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_throwaway_key_is_new_each_time_and_never_reloaded() {
        let (one, two) = (KeyRing::throwaway().unwrap(), KeyRing::throwaway().unwrap());
        let kid = one.keys().signing_kid().to_owned();
        assert_ne!(kid, two.keys().signing_kid());
        assert_eq!(one.reload(), Reload::Unchanged);
        assert_eq!(one.keys().signing_kid(), kid);
        assert_eq!(one.keys().jwks().keys.len(), 1);
    }

    #[test]
    fn files_that_are_not_ed25519_pkcs8_keys_are_refused_without_printing_them() {
        let not_pem = SigningKeys::parse(b"hello").unwrap_err();
        assert!(not_pem.contains("no PEM private key"), "{not_pem}");
        let cert = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let other_kind = cert.signing_key.serialize_pem();
        let refused = SigningKeys::parse(other_kind.as_bytes()).unwrap_err();
        assert!(refused.contains("not an Ed25519"), "{refused}");
        let certificate = SigningKeys::parse(cert.cert.pem().as_bytes()).unwrap_err();
        assert!(certificate.contains("is a CERTIFICATE"), "{certificate}");
        assert!(!refused.contains("BEGIN"));
    }

    #[test]
    fn a_refused_key_file_says_what_it_holds_in_words() {
        let generated = generate_pem().unwrap();
        let body = generated.lines().nth(1).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let encrypted = format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        // An X25519 key (RFC 8410), which is no signing key.
        let x25519 = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VuBCIEIIgc4yMQBbKirZvSTwEJfLCuLf9TB3Pj6s7csWZiaCNd\n\
            -----END PRIVATE KEY-----\n";
        let cases = [
            (
                cert.signing_key.serialize_pem(),
                "is an EC key, not an Ed25519 key",
            ),
            (x25519.to_owned(), "is an X25519 key, not an Ed25519 key"),
            (encrypted, "holds an ENCRYPTED PRIVATE KEY"),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}\n"),
                r#"no end line: "-----END PRIVATE KEY-----" is missing"#,
            ),
            (
                format!("-----BEGIN PRIVATE KEY\n{body}\n"),
                r#"malformed line "-----BEGIN PRIVATE KEY""#,
            ),
            (
                generated
                    .replace("-----BEGIN PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----")
                    .replace("-----END PRIVATE KEY-----", "-----END PUBLIC KEY-----"),
                "is a PUBLIC KEY",
            ),
        ];
        for (pem, says) in cases {
            let problem = SigningKeys::parse(pem.as_bytes()).unwrap_err();
            assert!(problem.contains(says), "{problem:?} should say {says:?}");
            // Words, not the byte values the PEM parser's own messages list.
            let bytes_listed = problem
                .as_bytes()
                .windows(2)
                .any(|w| w[0] == b'[' && w[1].is_ascii_digit());
            assert!(!bytes_listed, "{problem}");
            assert!(!problem.contains(body), "the key never appears: {problem}");
        }
    }

    /// A DER value: `tag`, a DER length, `contents`.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() >= 0x80 {
            out.push(0x81);
        }
        out.push(contents.len() as u8);
        out.extend_from_slice(contents);
        out
    }

    /// `der` as a PEM `PRIVATE KEY` section.
    fn pem_of(der: &[u8]) -> String {
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{text}\n-----END PRIVATE KEY-----\n")
    }

    /// A key written by `openssl genpkey -algorithm ed25519` (PKCS#8 v1).
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGyqZWOG/0iK3JOhv6xaQeMzz2+/TXUY5niwmgPsCo/o
-----END PRIVATE KEY-----
";
    /// A key written by `consentry keygen` before it signed with ring (PKCS#8 v2, ed25519-dalek).
    const EARLIER_KEYGEN_KEY: &str = "-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEII9zZ+WqYGvMMsqLuICR1Ah5q1lnqQ0WRE03LIHPdpXE
gSEABOUdGFaK9E15ceaBO3xAP+ImMDMYhF8ZX2yy3NUJaTA=
-----END PRIVATE KEY-----
";
    /// RFC 8410 §10.3: a key in PKCS#8 v1, then the same key in v2 with an attribute.
    const RFC_8410_V1: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";
    const RFC_8410_V2: &str = "-----BEGIN PRIVATE KEY-----
MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB
Z9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PRIVATE KEY-----
";
    /// Keys of OpenSSL's other algorithms of RFC 8410.
    const ED448_KEY: &str = "-----BEGIN PRIVATE KEY-----
MEcCAQAwBQYDK2VxBDsEOVaaCuF0pEMgf/ufOO+GBZmclfP8B/XaBv2rs0H4dTOr
hVJDm0QoKnHegGcUQC0EU5hHd6ye44kI3Q==
-----END PRIVATE KEY-----
";
    const X448_KEY: &str = "-----BEGIN PRIVATE KEY-----
MEYCAQAwBQYDK2VvBDoEOIigaDSGTvpk9F22hb5oKHC8nuEFCtmjQ8fYyBCYxaZe
tvd8S3RcJHwU/25dU3MU2GOGvvTO71fs
-----END PRIVATE KEY-----
";

    #[test]
    fn key_files_of_every_writer_and_form_read_as_they_always_have() {
        // The kids and refusals below are what the reader said when it was ed25519-dalek's.
        let seed = [7u8; 32];
        let public = URL_SAFE_NO_PAD
            .decode("6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw")
            .unwrap();
        let mut other_public = public.clone();
        other_public[3] ^= 1;
        let ed25519 = tlv(0x30, &tlv(0x06, &[0x2b, 0x65, 0x70]));
        let private = tlv(0x04, &tlv(0x04, &seed));
        let (v1, v2) = (tlv(0x02, &[0]), tlv(0x02, &[1]));
        let bits = |key: &[u8]| [&[0u8][..], key].concat();
        let public_field = tlv(0x81, &bits(&public));
        let attribute = tlv(
            0xa0,
            &tlv(
                0x30,
                &[tlv(0x06, &[0x2a, 0x03]), tlv(0x31, &tlv(0x0c, b"x"))].concat(),
            ),
        );
        let key = |fields: &[&[u8]]| pem_of(&tlv(0x30, &fields.concat()));
        let seven = "--6IM5l0OosLj9yWskISYhUA3n_3CURQkmrYMSha_ck";
        let rfc = "3YZxBJ12jO3n_mXt_q-j_Z-TFP1vt-NiI3OCf-fEnHQ";
        let not_pkcs8 = "is not a well-formed PKCS#8 private key";
        let malformed = "is an Ed25519 key whose key data is malformed (PKCS#8 cryptographic key data malformed)";
        let cases: Vec<(String, Result<&str, &str>)> = vec![
            (
                OPENSSL_KEY.into(),
                Ok("kIdj3t5ifxg2EZBYst_as8DxtCeBz5LYJ0VojICda8U"),
            ),
            (
                EARLIER_KEYGEN_KEY.into(),
                Ok("zZz4yOXEj9nTKBVaGCTUH4-viKS3rFD_gp7HBAxwfc0"),
            ),
            (RFC_8410_V1.into(), Ok(rfc)),
            (RFC_8410_V2.into(), Ok(rfc)),
            (key(&[&v1, &ed25519, &private]), Ok(seven)),
            (key(&[&v2, &ed25519, &private, &public_field]), Ok(seven)),
            (key(&[&v1, &ed25519, &private, &attribute]), Ok(seven)),
            (
                key(&[&v2, &ed25519, &private, &attribute, &public_field]),
                Ok(seven),
            ),
            (ED448_KEY.into(), Err("is an Ed448 key, not an Ed25519 key")),
            (X448_KEY.into(), Err("is an X448 key, not an Ed25519 key")),
            (
                key(&[
                    &v1,
                    &tlv(
                        0x30,
                        &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01]),
                    ),
                    &private,
                ]),
                Err("is a key of the algorithm 1.2.840.10040.4.1, not an Ed25519 key"),
            ),
            (
                key(&[&v2, &ed25519, &private, &tlv(0x81, &bits(&other_public))]),
                Err(malformed),
            ),
            (
                key(&[&v2, &ed25519, &private, &tlv(0x81, &bits(&public[..31]))]),
                Err(malformed),
            ),
            (
                key(&[&v1, &ed25519, &tlv(0x04, &tlv(0x04, &seed[..31]))]),
                Err(malformed),
            ),
            (key(&[&v1, &ed25519, &tlv(0x04, &seed)]), Err(malformed)),
            (
                key(&[
                    &v1,
                    &tlv(0x30, &[tlv(0x06, &[0x2b, 0x65, 0x70]), vec![5, 0]].concat()),
                    &private,
                ]),
                Err(
                    "is an Ed25519 key whose key data is malformed (PKCS#8 algorithm parameters malformed)",
                ),
            ),
            // The early v2 form that tagged the public key as a constructed field.
            (
                key(&[
                    &v2,
                    &ed25519,
                    &private,
                    &tlv(0xa1, &tlv(0x03, &bits(&public))),
                ]),
                Err(not_pkcs8),
            ),
            (key(&[&v2, &ed25519, &private]), Err(not_pkcs8)),
            (
                key(&[&v1, &ed25519, &private, &public_field]),
                Err(not_pkcs8),
            ),
            (key(&[&tlv(0x02, &[2]), &ed25519, &private]), Err(not_pkcs8)),
            (key(&[&[2, 2, 0, 0], &ed25519, &private]), Err(not_pkcs8)),
            (key(&[&v1, &ed25519, &private, &[5, 0]]), Err(not_pkcs8)),
            (key(&[&v1, &tlv(0x30, &[]), &private]), Err(not_pkcs8)),
            (
                pem_of(
                    &[
                        tlv(
                            0x30,
                            &[v1.clone(), ed25519.clone(), private.clone()].concat(),
                        ),
                        vec![0],
                    ]
                    .concat(),
                ),
                Err(not_pkcs8),
            ),
            (
                pem_of(&[&[0x30, 0x81, 0x2e][..], &v1, &ed25519, &private].concat()),
                Err(not_pkcs8),
            ),
            (pem_of(b"hello world"), Err(not_pkcs8)),
        ];
        for (pem, expected) in cases {
            let got = SigningKeys::parse(pem.as_bytes());
            match (got, expected) {
                (Ok(keys), Ok(kid)) => assert_eq!(keys.signing_kid(), kid, "{pem}"),
                (Err(problem), Err(says)) => {
                    assert!(problem.contains(says), "{problem:?} should say {says:?}");
                    assert!(!problem.contains('['), "in words: {problem}");
                }
                (got, expected) => panic!(
                    "{pem}: {:?}, expected {expected:?}",
                    got.map(|k| k.signing_kid().to_owned())
                ),
            }
        }
    }

    #[test]
    fn a_generated_key_is_pkcs8_v2_with_its_public_key() {
        let pem = generate_pem().unwrap();
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let info = PrivateKeyInfo::read(der.secret_pkcs8_der()).unwrap();
        assert_eq!(info.algorithm, pkcs8::ED25519);
        let keys = SigningKeys::parse(pem.as_bytes()).unwrap();
        let public = URL_SAFE_NO_PAD.decode(&keys.jwks().keys[0].x).unwrap();
        assert_eq!(info.public_key, Some(&public[..]));
        assert!(pem.lines().all(|line| line.len() <= 64), "{pem}");
    }
}
