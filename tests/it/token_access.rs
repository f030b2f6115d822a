//! Who may mint and who may verify context tokens (docs/rules.md §8): minting for a user needs
//! `assert_user` besides `query`, app-only tokens need only `query`; `GetSigningKeys` needs no
//! key at all (and answers from the key file through a database outage); `consentry keygen`, and
//! `consentry token verify` checking the issuer, and the tenant and the app when told, and
//! refusing what it cannot trust, as processes; and key rotation done as the README says never
//! breaks a verifier that caches the key set.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consentry::proto::*;
use consentry::token::{Expected, Jwks, SigningKeys, VerifyError};
use serde_json::Value;
use tonic::Code;

use crate::context_tokens::{
    AUDIENCE, ISSUER, World, consentry, key_config, key_file, new_key, token_req,
    verify_independently, world, world_on,
};
use crate::support::calls::{Cases, Who};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::dir::TempDir;
use crate::support::server::eventually;
use crate::support::world::new_client;

backend_tests!(
    minting_for_a_user_needs_assert_user_and_app_only_needs_query,
    the_signing_keys_need_no_key,
    token_verify_checks_the_issuer_tenant_and_app,
    rotating_as_the_readme_says_keeps_a_caching_verifier_working,
);

postgres_tests!(the_signing_keys_are_published_through_a_database_outage);

async fn minting_for_a_user_needs_assert_user_and_app_only_needs_query(db: &TestDb) {
    let dir = TempDir::new("token-access");
    let mut w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let boot = Who::boot();
    let query = new_client(
        &mut w.admin,
        &boot,
        "query-svc",
        &["acme"],
        &[Capability::Query],
    )
    .await;
    let minter = new_client(
        &mut w.admin,
        &boot,
        "idp-svc",
        &["acme"],
        &[Capability::Query, Capability::AssertUser],
    )
    .await;
    let assert_only = new_client(
        &mut w.admin,
        &boot,
        "assert-svc",
        &["acme"],
        &[Capability::AssertUser],
    )
    .await;
    let (query, minter, assert_only) =
        (Who::key(&query), Who::key(&minter), Who::key(&assert_only));
    let for_dave = || token_req("crm", "dave", "/hr");
    let on_behalf = |user: &str| IssueContextTokenRequest {
        on_behalf_of: "dave".into(),
        ..token_req("crm", user, "/hr/team")
    };
    let mut cases = Cases::new("who may mint");
    // A query-only client naming a user, or a user to act for, is refused, naming assert_user:
    // before validation, as every capability is.
    let refused = [
        ("user_id", for_dave()),
        ("on_behalf_of", on_behalf("bob")),
        ("on_behalf_of without user_id", on_behalf("")),
        (
            "a malformed user_id",
            IssueContextTokenRequest {
                user_id: "da/ve".into(),
                ..for_dave()
            },
        ),
    ];
    for (what, request) in refused {
        cases.check_all(
            format!("query only, naming {what}"),
            w.issue_as(&query, request).await,
            Code::PermissionDenied,
            &["assert_user", "query-svc"],
        );
    }
    // App-only tokens need only query.
    let app_only = w.issue_as(&query, token_req("reports", "", "/")).await;
    cases.expect(
        "query only, app-only",
        app_only.as_ref().is_ok_and(|r| r.issued),
        format!("{app_only:?}"),
    );
    // With assert_user as well, tokens for users are issued; without query nothing is.
    for (what, request) in [("user_id", for_dave()), ("on_behalf_of", on_behalf("bob"))] {
        let reply = w.issue_as(&minter, request).await;
        cases.expect(
            format!("query and assert_user, naming {what}"),
            reply.as_ref().is_ok_and(|r| r.issued),
            format!("{reply:?}"),
        );
    }
    cases.check(
        "assert_user without query",
        w.issue_as(&assert_only, for_dave()).await,
        Code::PermissionDenied,
        "query",
    );
    // A token the query-only client could have minted before: it would have spoken for dave.
    let dave = w.issue_as(&minter, for_dave()).await.unwrap();
    let (_, claims) = verify_independently(&dave.token, &w.jwks().await);
    cases.expect(
        "the minted token is dave's",
        claims["sub"] == "dave",
        &claims,
    );
    cases.finish();
    w.server.stop().await;
}

/// GetSigningKeys as `who`.
async fn signing_keys_as(w: &World, who: &Who) -> Result<String, tonic::Status> {
    w.perm
        .clone()
        .get_signing_keys(who.r(GetSigningKeysRequest {}))
        .await
        .map(|r| r.into_inner().jwks)
}

async fn the_signing_keys_need_no_key(db: &TestDb) {
    let dir = TempDir::new("token-access");
    let pem = new_key();
    let w = world(db, Some(&key_file(&dir, &[&pem]))).await;
    let kid = SigningKeys::parse(pem.as_bytes())
        .unwrap()
        .signing_kid()
        .to_owned();
    let published = signing_keys_as(&w, &Who::nobody()).await.unwrap();
    let set: Value = serde_json::from_str(&published).unwrap();
    assert_eq!(set["keys"][0]["kid"], kid.as_str(), "{set}");
    // Whatever authorization a caller sends is ignored: keys are public, and a verifier may
    // share a channel with other calls.
    let mut cases = Cases::new("GetSigningKeys without a key");
    for who in [
        Who::boot(),
        Who::header("Basic dXNlcjpwYXNz"),
        Who::key("csk_not-a-key-anybody-was-given"),
        Who::nobody().user("alice"),
    ] {
        let answer = signing_keys_as(&w, &who).await;
        cases.expect(
            format!("{who:?}"),
            answer.as_ref().is_ok_and(|jwks| *jwks == published),
            format!("{answer:?}"),
        );
    }
    // The same set a token verifies with, by a verifier that holds no key.
    let token = w.issue(token_req("crm", "dave", "/hr")).await.token;
    verify_independently(&token, &published);
    // Other RPCs still need a key.
    let check = w
        .perm
        .clone()
        .issue_context_token(Who::nobody().r(token_req("reports", "", "/")))
        .await;
    cases.check(
        "IssueContextToken without a key",
        check,
        Code::Unauthenticated,
        "",
    );
    cases.finish();
    w.server.stop().await;
}

async fn the_signing_keys_are_published_through_a_database_outage(db: &TestDb) {
    let dir = TempDir::new("token-access");
    let mut config = key_config(db, Some(&key_file(&dir, &[&new_key()])));
    config.max_staleness = Duration::from_millis(300);
    let w = world_on(config).await;
    let published = signing_keys_as(&w, &Who::nobody()).await.unwrap();
    db.drop_in_use().await;
    // Past the staleness bound every check is UNAVAILABLE; the keys come from the key file.
    let perm = w.perm.clone();
    eventually(Duration::from_secs(10), || {
        let mut perm = perm.clone();
        async move {
            let q = CheckAccessRequest {
                tenant_id: "acme".into(),
                app_id: "crm".into(),
                user_id: "dave".into(),
                ..CheckAccessRequest::default()
            };
            matches!(perm.check_access(Who::boot().r(q)).await, Err(s) if s.code() == Code::Unavailable)
        }
    })
    .await;
    assert_eq!(
        signing_keys_as(&w, &Who::nobody()).await.unwrap(),
        published
    );
    w.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// `consentry token verify`, as a process.

/// `consentry token verify --jwks <jwks>` with `args` and `token`: the exit code and stderr,
/// after checking that a refusal prints no claims.
fn verify_cli(jwks: &std::path::Path, args: &[&str], token: &str) -> (Option<i32>, String) {
    let mut all = vec!["token", "verify", "--jwks", jwks.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(token);
    let out = consentry(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        assert!(
            out.stdout.is_empty(),
            "claims printed for a refusal: {stderr}"
        );
    }
    (out.status.code(), stderr)
}

async fn token_verify_checks_the_issuer_tenant_and_app(db: &TestDb) {
    let dir = TempDir::new("token-verify");
    let pem = new_key();
    let w = world(db, Some(&key_file(&dir, &[&pem]))).await;
    let published = w.jwks().await;
    let jwks = dir.write("jwks.json", &published);
    let token = w.issue(token_req("crm", "dave", "/hr")).await.token;
    let mut cases = Cases::new("consentry token verify");
    let mut expect = |what: &str, args: &[&str], token: &str, code: i32, needle: &str| {
        let (got, stderr) = verify_cli(&jwks, args, token);
        cases.expect(
            what,
            got == Some(code) && stderr.contains(needle),
            format!("exit {got:?} (expected {code}, {needle:?}): {stderr}"),
        );
        cases.expect(
            format!("{what}: a short message"),
            stderr.len() < 400,
            format!("{} bytes", stderr.len()),
        );
    };
    let aud = ["--audience", AUDIENCE];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [&aud[..], extra].concat() };
    // The server here signs as ISSUER; a verifier expecting the default issuer refuses it.
    expect("the default issuer", &aud, &token, 1, "WRONG_ISSUER");
    expect(
        "another issuer",
        &with(&["--issuer", "https://id.example"]),
        &token,
        1,
        "WRONG_ISSUER",
    );
    expect("the issuer", &with(&["--issuer", ISSUER]), &token, 0, "");
    let ok = ["--issuer", ISSUER];
    let told =
        |extra: &[&'static str]| -> Vec<&'static str> { [&aud[..], &ok[..], extra].concat() };
    expect("the tenant", &told(&["--tenant", "acme"]), &token, 0, "");
    expect(
        "another tenant",
        &told(&["--tenant", "globex"]),
        &token,
        1,
        "WRONG_TENANT",
    );
    expect(
        "the app",
        &told(&["--tenant", "acme", "--app", "crm"]),
        &token,
        0,
        "",
    );
    expect(
        "another app",
        &told(&["--app", "reports"]),
        &token,
        1,
        "WRONG_APP",
    );
    // Expectations that can match nothing are configuration errors naming the flag.
    expect(
        "an empty --issuer",
        &with(&["--issuer", ""]),
        &token,
        1,
        "--issuer",
    );
    expect(
        "a malformed --tenant",
        &told(&["--tenant", "a b"]),
        &token,
        1,
        "--tenant",
    );
    expect(
        "a malformed --app",
        &told(&["--app", ""]),
        &token,
        1,
        "--app",
    );

    // Headers and key sets it cannot trust: a typed reason each, never a panic.
    let keys = SigningKeys::parse(pem.as_bytes()).unwrap();
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let forge = |header: Value, sign: bool| {
        let signed = format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
        );
        let signature = if sign {
            URL_SAFE_NO_PAD.encode(keys.sign(signed.as_bytes()))
        } else {
            String::new()
        };
        format!("{signed}.{signature}")
    };
    let kid = keys.signing_kid();
    let crit = forge(
        serde_json::json!({"alg": "EdDSA", "kid": kid, "crit": ["exp"]}),
        true,
    );
    expect("crit", &told(&[]), &crit, 1, "CRITICAL_HEADER_NOT_ACCEPTED");
    let none = forge(serde_json::json!({"alg": "none", "kid": kid}), false);
    expect("alg none", &told(&[]), &none, 1, "ALGORITHM_NOT_ACCEPTED");
    let hs256 = forge(serde_json::json!({"alg": "HS256", "kid": kid}), true);
    expect("alg HS256", &told(&[]), &hs256, 1, "ALGORITHM_NOT_ACCEPTED");
    let long_kid = forge(
        serde_json::json!({"alg": "EdDSA", "kid": "k".repeat(5000)}),
        true,
    );
    expect("an unknown kid", &told(&[]), &long_kid, 1, "UNKNOWN_KEY");
    let long_alg = forge(
        serde_json::json!({"alg": "A".repeat(5000), "kid": kid}),
        true,
    );
    expect(
        "a long alg",
        &told(&[]),
        &long_alg,
        1,
        "ALGORITHM_NOT_ACCEPTED",
    );

    // A JWK set shared with keys of other types: those are skipped.
    let mut set: Value = serde_json::from_str(&published).unwrap();
    let rsa = serde_json::json!({"kty": "RSA", "kid": "rsa-1", "n": "sXch", "e": "AQAB"});
    let ec =
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": "f83O", "y": "x_FE"});
    let keys_of = set["keys"].as_array_mut().unwrap();
    keys_of.insert(0, rsa.clone());
    keys_of.push(ec.clone());
    let mixed = dir.write("mixed.json", &set.to_string());
    let (code, stderr) = verify_cli(&mixed, &told(&[]), &token);
    cases.expect("a mixed set", code == Some(0), stderr);
    for (name, text, needle) in [
        (
            "others.json",
            serde_json::json!({"keys": [rsa, ec]}).to_string(),
            "no usable key",
        ),
        ("empty.json", r#"{"keys": []}"#.to_owned(), "no usable key"),
        ("text.json", "not json".to_owned(), "not JSON"),
    ] {
        let (code, stderr) = verify_cli(&dir.write(name, &text), &told(&[]), &token);
        cases.expect(
            format!("the set {name}"),
            code == Some(1) && stderr.contains("BAD_JWKS") && stderr.contains(needle),
            format!("exit {code:?}: {stderr}"),
        );
    }
    cases.finish();
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_verify_exits_zero_for_a_valid_token_and_one_with_the_reason() {
    let db = TestDb::sqlite().await;
    let dir = TempDir::new("tokens-cli");
    let keys = dir.0.join("generated.pem");
    let keygen = consentry(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(keygen.status.success(), "{keygen:?}");
    let again = consentry(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );
    let w = world(&db, Some(&keys)).await;
    let jwks = dir.write("jwks.json", &w.jwks().await);
    let token = w.issue(token_req("crm", "dave", "/hr")).await.token;
    let verify = |extra: &[&str], token: &str| {
        let mut args = vec![
            "token",
            "verify",
            "--jwks",
            jwks.to_str().unwrap(),
            "--issuer",
            ISSUER,
        ];
        args.extend_from_slice(extra);
        args.push(token);
        let out = consentry(&args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, _) = verify(&["--audience", AUDIENCE], &token);
    assert_eq!(code, Some(0), "{stdout}");
    let claims: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(claims["sub"], "dave");
    let held = [
        "--audience",
        AUDIENCE,
        "--resource",
        "/hr/team/docs/x",
        "--permission",
        "MANAGE_LISTS",
    ];
    assert_eq!(verify(&held, &token).0, Some(0));
    let tampered = {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 1;
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let refusals: [(&[&str], &str, &str); 4] = [
        (
            &["--audience", "https://other.example"],
            token.as_str(),
            "WRONG_AUDIENCE",
        ),
        (
            &[
                "--audience",
                AUDIENCE,
                "--resource",
                "/hr",
                "--permission",
                "EDIT_ITEMS",
            ],
            token.as_str(),
            "PERMISSION_NOT_HELD",
        ),
        (&["--audience", AUDIENCE], "not-a-token", "MALFORMED"),
        (&["--audience", AUDIENCE], &tampered, "BAD_SIGNATURE"),
    ];
    for (args, token, reason) in refusals {
        let (code, stdout, stderr) = verify(args, token);
        assert_eq!(code, Some(1), "{args:?}: {stdout} {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "no claims printed for a refused token");
    }
    w.server.stop().await;
    db.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Rotation with a verifier that caches the key set.

/// A downstream service's verifier: it fetched the JWK set once, with no key, and keeps using
/// it until it refreshes.
struct CachingVerifier {
    jwks: Jwks,
}

impl CachingVerifier {
    async fn fetch(w: &World) -> CachingVerifier {
        let text = signing_keys_as(w, &Who::nobody()).await.unwrap();
        CachingVerifier {
            jwks: Jwks::parse(&text).unwrap(),
        }
    }

    fn verify(&self, token: &str) -> Result<(), VerifyError> {
        let expected = Expected::new(AUDIENCE).with_issuer(ISSUER);
        consentry::token::verify(token, &self.jwks, &expected, SystemTime::now()).map(|_| ())
    }
}

/// The kid in a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn kid(pem: &str) -> String {
    SigningKeys::parse(pem.as_bytes())
        .unwrap()
        .signing_kid()
        .to_owned()
}

/// Waits until the server publishes exactly `kids`, in that order.
async fn published(w: &World, kids: &[String]) {
    eventually(Duration::from_secs(10), || async move {
        let text = signing_keys_as(w, &Who::nobody()).await.unwrap();
        let set: Value = serde_json::from_str(&text).unwrap();
        let now: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        now == kids
    })
    .await;
}

/// A token for dave, as the server signs it now.
async fn dave(w: &World) -> String {
    w.issue(token_req("crm", "dave", "/hr")).await.token
}

async fn rotating_as_the_readme_says_keeps_a_caching_verifier_working(db: &TestDb) {
    let dir = TempDir::new("token-rotation");
    let (old, new) = (new_key(), new_key());
    let w = world(db, Some(&key_file(&dir, &[&old]))).await;
    let stale = CachingVerifier::fetch(&w).await;
    let before = dave(&w).await;
    stale.verify(&before).unwrap();

    // 1. Stage: the new key second. It is published; tokens are still signed by the old key, so
    //    a verifier that has not refreshed keeps working.
    key_file(&dir, &[&old, &new]);
    published(&w, &[kid(&old), kid(&new)]).await;
    let staged = dave(&w).await;
    assert_eq!(kid_of(&staged), kid(&old));
    stale.verify(&staged).unwrap();

    // 2. Verifiers refresh their cached set (within their cache time), then the new key moves
    //    to the front: new tokens carry its kid, which the refreshed verifier knows, and tokens
    //    signed by the old key still verify.
    let refreshed = CachingVerifier::fetch(&w).await;
    key_file(&dir, &[&new, &old]);
    published(&w, &[kid(&new), kid(&old)]).await;
    let moved = dave(&w).await;
    assert_eq!(kid_of(&moved), kid(&new));
    refreshed.verify(&moved).unwrap();
    refreshed.verify(&before).unwrap();
    // Skipping step 1 would have broken a verifier that had not refreshed: it refuses the new key.
    assert_eq!(stale.verify(&moved).unwrap_err().reason(), "UNKNOWN_KEY");

    // 3. After the longest ttl the old key goes; tokens it signed have expired by then.
    key_file(&dir, &[&new]);
    published(&w, &[kid(&new)]).await;
    let last = CachingVerifier::fetch(&w).await;
    last.verify(&moved).unwrap();
    last.verify(&dave(&w).await).unwrap();
    assert_eq!(last.verify(&before).unwrap_err().reason(), "UNKNOWN_KEY");
    w.server.stop().await;
}
