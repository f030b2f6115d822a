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

/// The verifier's expectations in most tests: the audience of [`claims`], the default issuer.
fn docs() -> Expected {
    Expected::new("https://docs.example")
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
    let verified = verify(&token, &keys.jwks(), &docs(), at(NOW + 10)).unwrap();
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
    let err = verify(&token, &keys.jwks(), &docs(), at(NOW + 300)).unwrap_err();
    assert_eq!(err.reason(), "EXPIRED");
    assert!(verify(&token, &keys.jwks(), &docs(), at(NOW + 299)).is_ok());
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let err = verify(
        &token,
        &keys.jwks(),
        &Expected::new("https://mail.example"),
        at(NOW),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::WrongAudience { .. }), "{err}");
}

#[test]
fn a_token_signed_by_an_unpublished_key_is_refused() {
    let token = sign(&claims(), &keys());
    let err = verify(&token, &keys().jwks(), &docs(), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "UNKNOWN_KEY");
}

#[test]
fn a_key_published_under_the_signers_kid_but_another_key_is_a_bad_signature() {
    let (signer, other) = (keys(), keys());
    let token = sign(&claims(), &signer);
    let mut jwks = other.jwks();
    jwks.keys[0].kid = signer.signing_kid().to_owned();
    let err = verify(&token, &jwks, &docs(), at(NOW)).unwrap_err();
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
    let err = verify(&p.join("."), &keys.jwks(), &docs(), at(NOW)).unwrap_err();
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
    let err = verify(&p.join("."), &keys.jwks(), &docs(), at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    p[2] = b64(&signature[..63]);
    let err = verify(&p.join("."), &keys.jwks(), &docs(), at(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn what_is_not_a_compact_jws_is_refused() {
    let jwks = keys().jwks();
    for bad in ["", "abc", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
        let err = verify(bad, &jwks, &Expected::new("x"), at(NOW)).unwrap_err();
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
        let err = verify(&forged, &keys.jwks(), &docs(), at(NOW)).unwrap_err();
        assert_eq!(err.reason(), "ALGORITHM_NOT_ACCEPTED", "{alg}: {err}");
        assert!(err.to_string().contains(&format!("\"{alg}\"")), "{err}");
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
    let err = verify(&token, &keys.jwks(), &docs(), at(NOW)).unwrap_err();
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

/// A token with any header and payload, signed by `keys`' first key.
fn signed_as(keys: &SigningKeys, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{signed}.{}", b64(&keys.sign(signed.as_bytes())))
}

#[test]
fn the_issuer_and_when_asked_the_tenant_and_app_must_be_the_expected_ones() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let check = |expected: Expected| verify(&token, &keys.jwks(), &expected, at(NOW));
    assert!(check(docs()).is_ok(), "the default issuer is consentry");
    assert!(
        check(
            docs()
                .with_issuer("consentry")
                .with_tenant("acme")
                .with_app("crm")
        )
        .is_ok()
    );
    for (expected, reason) in [
        (docs().with_issuer("https://id.example"), "WRONG_ISSUER"),
        (docs().with_tenant("globex"), "WRONG_TENANT"),
        (docs().with_app("notes"), "WRONG_APP"),
        (docs().with_tenant("acme").with_app("Crm"), "WRONG_APP"),
    ] {
        let err = check(expected.clone()).unwrap_err();
        assert_eq!(err.reason(), reason, "{expected:?}: {err}");
    }
    // A token naming another issuer is refused by a verifier expecting the default one, and
    // the value it names is quoted short.
    let forged = Claims {
        iss: "x".repeat(10_000),
        ..claims()
    };
    let err = verify(&sign(&forged, &keys), &keys.jwks(), &docs(), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "WRONG_ISSUER");
    assert!(err.to_string().len() < 300, "{err}");
}

#[test]
fn a_header_with_crit_is_refused_whatever_it_names() {
    let keys = keys();
    let claims = serde_json::to_value(claims()).unwrap();
    for crit in [
        serde_json::json!(["exp"]),
        serde_json::json!([]),
        serde_json::Value::Null,
        serde_json::json!("b64"),
    ] {
        let header = serde_json::json!({
            "alg": "EdDSA", "typ": "JWT", "kid": keys.signing_kid(), "crit": crit
        });
        let token = signed_as(&keys, &header, &claims);
        let err = verify(&token, &keys.jwks(), &docs(), at(NOW)).unwrap_err();
        assert_eq!(
            err.reason(),
            "CRITICAL_HEADER_NOT_ACCEPTED",
            "{crit}: {err}"
        );
    }
    // The same header without crit verifies: only crit was refused.
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": keys.signing_kid()});
    assert!(
        verify(
            &signed_as(&keys, &header, &claims),
            &keys.jwks(),
            &docs(),
            at(NOW)
        )
        .is_ok()
    );
}

#[test]
fn values_from_an_unverified_header_are_quoted_short() {
    let keys = keys();
    let claims = serde_json::to_value(claims()).unwrap();
    let long = "\u{1b}".repeat(5_000);
    for (header, reason) in [
        (serde_json::json!({"alg": long}), "ALGORITHM_NOT_ACCEPTED"),
        (
            serde_json::json!({"alg": "EdDSA", "kid": long}),
            "UNKNOWN_KEY",
        ),
        (
            serde_json::json!({"alg": "EdDSA", "crit": [long]}),
            "CRITICAL_HEADER_NOT_ACCEPTED",
        ),
    ] {
        let token = signed_as(&keys, &header, &claims);
        let err = verify(&token, &keys.jwks(), &docs(), at(NOW)).unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        assert!(err.to_string().len() < 300, "{err}");
    }
}

#[test]
fn a_jwk_set_skips_keys_of_other_types_and_needs_one_it_can_use() {
    let keys = keys();
    let token = sign(&claims(), &keys);
    let ours = serde_json::to_value(&keys.jwks().keys[0]).unwrap();
    let rsa = serde_json::json!({"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB"});
    let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "e1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let x25519 = serde_json::json!({"kty": "OKP", "crv": "X25519", "kid": "x1",
        "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"});
    let mut encrypting = serde_json::to_value(&self::keys().jwks().keys[0]).unwrap();
    encrypting["use"] = "enc".into();
    let mut no_kid = serde_json::to_value(&self::keys().jwks().keys[0]).unwrap();
    no_kid.as_object_mut().unwrap().remove("kid");
    let not_a_point = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "p1", "x": "AA"});
    let mixed =
        serde_json::json!({"keys": [rsa, ec, x25519, encrypting, no_kid, not_a_point, ours]});
    let jwks = Jwks::parse(&mixed.to_string()).unwrap();
    assert_eq!(jwks.keys.len(), 1, "only the usable Ed25519 key is kept");
    assert!(verify(&token, &jwks, &docs(), at(NOW)).is_ok());

    let others = serde_json::json!({"keys": [rsa, ec]}).to_string();
    let err = Jwks::parse(&others).unwrap_err();
    assert_eq!(err.reason(), "BAD_JWKS");
    let message = err.to_string();
    assert!(message.contains("no usable key"), "{message}");
    assert!(
        message.contains("\"RSA\"") && message.contains("\"EC\""),
        "{message}"
    );
    for (text, needle) in [
        ("not json", "not JSON"),
        ("{}", "no `keys` array"),
        (r#"{"keys": "all"}"#, "no `keys` array"),
        (r#"{"keys": []}"#, "no keys"),
    ] {
        let err = Jwks::parse(text).unwrap_err();
        assert_eq!(err.reason(), "BAD_JWKS", "{text}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}

#[test]
fn issuers_are_printable_ascii_without_spaces() {
    assert!(check_issuer("consentry").is_ok());
    assert!(check_issuer("https://consentry.example").is_ok());
    assert!(check_issuer(&"i".repeat(256)).is_ok());
    for bad in ["", "con sentry", "é", &"i".repeat(257)] {
        assert!(check_issuer(bad).is_err(), "{bad:?}");
    }
}
