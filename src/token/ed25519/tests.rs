//! The checks of `ed25519.rs` against ed25519-dalek, an implementation that shares nothing with
//! ring: the same encodings have small order, and `verify_strict` accepts exactly what dalek's
//! `verify_strict` accepts.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::{Signature, VerifyingKey};
use proptest::prelude::*;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::*;

/// `encoded` with its sign bit set.
fn signed(mut encoded: [u8; 32]) -> [u8; 32] {
    encoded[31] |= 0x80;
    encoded
}

/// What ed25519-dalek makes of a key: `None` when it is no point, else whether it is weak.
fn dalek_weak(encoded: &[u8; 32]) -> Option<bool> {
    VerifyingKey::from_bytes(encoded).ok().map(|k| k.is_weak())
}

/// Every encoding of a point of small order: the table's, with either sign.
fn small_order_encodings() -> Vec<[u8; 32]> {
    SMALL_ORDER.iter().flat_map(|e| [*e, signed(*e)]).collect()
}

#[test]
fn small_order_encodings_are_those_dalek_calls_weak() {
    for encoded in small_order_encodings() {
        assert!(has_small_order(&encoded), "{encoded:02x?}");
        assert_eq!(dalek_weak(&encoded), Some(true), "{encoded:02x?}");
    }
    let key = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
    assert!(!has_small_order(&public));
}

#[test]
fn a_weak_key_that_ring_alone_would_accept_is_refused() {
    // With the identity as the key, R = identity and S = 0 satisfy [S]B = R + [h]A for every
    // message: ring's verification accepts it, a strict one must not.
    let identity = SMALL_ORDER[1];
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity);
    let message = b"anything at all";
    assert!(
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, identity)
            .verify(message, &signature)
            .is_ok(),
        "ring alone accepts it"
    );
    assert!(!verify_strict(&identity, message, &signature));
    let dalek = VerifyingKey::from_bytes(&identity).unwrap();
    assert!(
        dalek
            .verify_strict(message, &Signature::from_bytes(&signature))
            .is_err()
    );
}

#[test]
fn the_rfc_8037_example_signature_verifies() {
    // RFC 8037 appendix A.1 (the key) and A.4 (the JWS it signs).
    let b64 = |s: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap()
    };
    let seed = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let x: [u8; 32] = b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .try_into()
        .unwrap();
    let key = Ed25519KeyPair::from_seed_and_public_key(&seed, &x).unwrap();
    let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let (signed, signature) = jws.rsplit_once('.').unwrap();
    let signature: [u8; 64] = b64(signature).try_into().unwrap();
    assert_eq!(key.sign(signed.as_bytes()).as_ref(), signature);
    assert!(verify_strict(&x, signed.as_bytes(), &signature));
    assert!(!verify_strict(&x, b"another message", &signature));
}

/// `s` + ℓ (the group order), as bytes: the same scalar, not reduced.
fn plus_order(s: &[u8]) -> [u8; 32] {
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ORDER[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// How a case changes an honest signature before both verifiers see it.
#[derive(Debug, Clone)]
enum Change {
    None,
    FlipSignatureBit(usize),
    FlipKeyBit(usize),
    FlipMessageBit(usize),
    WeakKey(usize),
    SmallOrderR(usize),
    UnreducedS,
    RandomKey([u8; 32]),
}

fn change() -> impl Strategy<Value = Change> {
    let weak = small_order_encodings().len();
    prop_oneof![
        Just(Change::None),
        (0..512usize).prop_map(Change::FlipSignatureBit),
        (0..256usize).prop_map(Change::FlipKeyBit),
        (0..64usize).prop_map(Change::FlipMessageBit),
        (0..weak).prop_map(Change::WeakKey),
        (0..weak).prop_map(Change::SmallOrderR),
        Just(Change::UnreducedS),
        any::<[u8; 32]>().prop_map(Change::RandomKey),
    ]
}

proptest! {
    #[test]
    fn small_order_is_what_dalek_calls_weak(encoded in any::<[u8; 32]>()) {
        prop_assert_eq!(has_small_order(&encoded), dalek_weak(&encoded) == Some(true));
    }

    #[test]
    fn verification_accepts_what_dalek_verify_strict_accepts(
        seed in any::<[u8; 32]>(),
        message in proptest::collection::vec(any::<u8>(), 8..64),
        change in change(),
    ) {
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let mut public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
        let mut signature: [u8; 64] = key.sign(&message).as_ref().try_into().unwrap();
        let mut message = message;
        let weak = small_order_encodings();
        match change {
            Change::None => {}
            Change::FlipSignatureBit(i) => signature[i / 8] ^= 1 << (i % 8),
            Change::FlipKeyBit(i) => public[i / 8] ^= 1 << (i % 8),
            Change::FlipMessageBit(i) => {
                let at = i % message.len();
                message[at] ^= 1 << (i % 8);
            }
            Change::WeakKey(i) => public = weak[i],
            Change::SmallOrderR(i) => signature[..32].copy_from_slice(&weak[i]),
            Change::UnreducedS => {
                let s = plus_order(&signature[32..]);
                signature[32..].copy_from_slice(&s);
            }
            Change::RandomKey(other) => public = other,
        }
        let ours = verify_strict(&public, &message, &signature);
        let dalek = VerifyingKey::from_bytes(&public)
            .is_ok_and(|k| k.verify_strict(&message, &Signature::from_bytes(&signature)).is_ok());
        prop_assert_eq!(ours, dalek);
        if matches!(change, Change::None) {
            prop_assert!(ours, "an honest signature verifies");
        }
    }
}
