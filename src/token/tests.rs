//! The verifier's acceptance and each of its refusals.

#![allow(clippy::unwrap_used)]

use super::*;

fn keys() -> SigningKeys {
    SigningKeys::parse(generate_pem().unwrap().as_bytes()).unwrap()
}

const NOW: i64 = 1_800_000_000;

fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

fn claims() -> Claims {
    Claims {
        iss: "consentry".into(),
        aud: "https://docs.example".into(),
        iat: NOW,
        exp: NOW + 300,
        jti: "j1".into(),
        tid: "acme".into(),
        app: "crm".into(),
        sub: Some("bob".into()),
        act: Some(ActClaim {
            sub: "alice".into(),
        }),
        scp: vec!["docs:read".into()],
        pol: "USER_AND_APP".into(),
        rev: "r1".into(),
        rights: vec![
            RightAt {
                path: ResourcePath::parse("p", "/hr").unwrap(),
                level: Right::Read,
            },
            RightAt {
                path: ResourcePath::parse("p", "/hr/team").unwrap(),
                level: Right::Manage,
            },
        ],
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

#[test]
fn a_signed_token_verifies_and_its_rights_answer_offline() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let verified = verify(&token, &keys.jwks(), "https://docs.example", at(NOW + 10)).unwrap();
    assert_eq!(verified, claims());
    let path = |p: &str| ResourcePath::parse("p", p).unwrap();
    let perm = |p: &str| PermissionName::parse("p", p).unwrap();
    assert_eq!(
        verified.level_at(&path("/hr/team/docs")),
        Some(Right::Manage)
    );
    assert_eq!(verified.level_at(&path("/hr/other")), Some(Right::Read));
    assert_eq!(verified.level_at(&path("/fin")), None);
    assert!(verified.allows(&path("/hr/team"), perm("MANAGE_LISTS")));
    assert!(!verified.allows(&path("/hr"), perm("EDIT_ITEMS")));
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts(&token)[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], keys.signing_kid());
}

#[test]
fn an_expired_token_is_refused() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let err = verify(&token, &keys.jwks(), "https://docs.example", at(NOW + 300)).unwrap_err();
    assert_eq!(err.reason(), "EXPIRED");
    assert!(verify(&token, &keys.jwks(), "https://docs.example", at(NOW + 299)).is_ok());
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let err = verify(&token, &keys.jwks(), "https://mail.example", at(NOW)).unwrap_err();
    assert!(matches!(err, VerifyError::WrongAudience { .. }), "{err}");
}

#[test]
fn a_token_signed_by_an_unpublished_key_is_refused() {
    let token = sign(&claims(), &keys());
    let err = verify(&token, &keys().jwks(), "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "UNKNOWN_KEY");
}

#[test]
fn a_key_published_under_the_signers_kid_but_another_key_is_a_bad_signature() {
    let (signer, other) = (keys(), keys());
    let token = sign(&claims(), &signer);
    let mut jwks = other.jwks();
    jwks.keys[0].kid = signer.signing_kid().to_owned();
    let err = verify(&token, &jwks, "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn a_tampered_payload_is_refused() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let mut more = claims();
    more.rights[0].level = Right::FullControl;
    let mut p = parts(&token);
    p[1] = b64(&serde_json::to_vec(&more).unwrap());
    let err = verify(&p.join("."), &keys.jwks(), "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn a_tampered_signature_is_refused() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let mut p = parts(&token);
    let mut signature = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
    signature[7] ^= 1;
    p[2] = b64(&signature);
    let err = verify(&p.join("."), &keys.jwks(), "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    p[2] = b64(&signature[..63]);
    let err = verify(&p.join("."), &keys.jwks(), "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn what_is_not_a_compact_jws_is_refused() {
    let jwks = keys().jwks();
    for bad in ["", "abc", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
        let err = verify(bad, &jwks, "x", at(NOW)).unwrap_err();
        assert_eq!(err.reason(), "MALFORMED", "{bad}: {err}");
    }
}

#[test]
fn alg_none_and_other_algorithms_are_refused_before_any_key_is_looked_up() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let p = parts(&token);
    for alg in ["none", "HS256", "RS256", "eddsa"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, keys.signing_kid());
        let forged = format!("{}.{}.", b64(header.as_bytes()), p[1]);
        let err = verify(&forged, &keys.jwks(), "https://docs.example", at(NOW)).unwrap_err();
        assert_eq!(err, VerifyError::Algorithm(alg.to_owned()));
    }
}

#[test]
fn signed_claims_that_are_not_a_context_tokens_are_refused() {
    let keys = keys();
    let header = format!(
        r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
        keys.signing_kid()
    );
    let mut value = serde_json::to_value(claims()).unwrap();
    value["rights"][0]["level"] = "ALL".into();
    let signed = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(value.to_string().as_bytes())
    );
    let token = format!("{signed}.{}", b64(&keys.sign(signed.as_bytes())));
    let err = verify(&token, &keys.jwks(), "https://docs.example", at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "BAD_CLAIMS", "{err}");
}

#[test]
fn audiences_and_ttls_are_validated() {
    assert!(parse_audience("https://docs.example/api").is_ok());
    assert!(parse_audience(&"a".repeat(256)).is_ok());
    for bad in ["", "tab\there", "é", &"a".repeat(257)] {
        assert_eq!(
            parse_audience(bad).unwrap_err().field,
            "audience",
            "{bad:?}"
        );
    }
    assert_eq!(parse_ttl(0).unwrap(), DEFAULT_TTL);
    assert_eq!(parse_ttl(1).unwrap(), Duration::from_secs(1));
    assert_eq!(parse_ttl(3600).unwrap(), MAX_TTL);
    for bad in [-1, 3601, i64::MAX] {
        assert_eq!(parse_ttl(bad).unwrap_err().field, "ttl_seconds");
    }
}

#[test]
fn a_jwks_round_trips_through_its_json() {
    let jwks = keys().jwks();
    let json = jwks.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let key = &value["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &"OKP".into(),
            &"Ed25519".into(),
            &"EdDSA".into(),
            &"sig".into()
        )
    );
    assert_eq!(Jwks::parse(&json).unwrap(), jwks);
    assert_eq!(Jwks::parse("{}").unwrap_err().reason(), "BAD_JWKS");
}
