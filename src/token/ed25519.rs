//! Ed25519 verification as strict as consentry has always been, on ring: ring checks the
//! signature (RFC 8032, `S` below the group order, `R` compared byte for byte); this module adds
//! the two refusals of a *strict* verifier that ring does not make, and the check that a JWK's
//! `x` is a curve point at all, which ring only finds out when a signature fails.
//!
//! * A public key or a signature's `R` of small order (one of the eight points whose multiple by
//!   the cofactor is the identity) is refused: with such a key, `R` = identity and `S` = 0 verify
//!   for every message under ring's rule, so a weak key slipped into a shared JWK set would let
//!   anyone sign.
//! * [`is_point`] tells an `x` that no point has (about half of all 32-byte strings) from a key,
//!   so that a JWK set skips it as it skips keys of other types.
//!
//! Only public values pass through here; nothing needs to run in constant time.

use ring::signature::{ED25519, UnparsedPublicKey};

/// Whether `signature` over `message` verifies with the Ed25519 public key `public`, refusing a
/// key or an `R` of small order besides what ring refuses.
pub fn verify_strict(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Some(r) = signature.first_chunk::<32>() else {
        return false;
    };
    if has_small_order(public) || has_small_order(r) {
        return false;
    }
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, signature)
        .is_ok()
}

/// Whether `encoded` is the encoding of a point of the curve: its `y` (the low 255 bits, taken
/// modulo p as every Ed25519 implementation takes it) has an `x` with −x² + y² = 1 + d·x²·y²,
/// that is, (y² − 1)/(d·y² + 1) is a square modulo p.
pub fn is_point(encoded: &[u8; 32]) -> bool {
    let y = y_of(encoded);
    let yy = mul(&y, &y);
    let u = add(&yy, &P_MINUS_ONE);
    let v = add(&mul(&D, &yy), &ONE);
    // Euler's criterion: u/v is a square (or zero) exactly when (u·v)^((p−1)/2) is 1 (or 0).
    let legendre = canonical(pow(&mul(&u, &v), &HALF_P_MINUS_ONE));
    legendre == ZERO || legendre == ONE
}

/// Whether `encoded` is one of the eight points of small order, in any of its encodings: the
/// identity (y = 1), the point of order 2 (y = −1), the two of order 4 (y = 0) and the four of
/// order 8 (y = ±y₈), with either sign bit, and `y` + p for the `y` below 19 (0 and 1). The list
/// is libsodium's.
pub fn has_small_order(encoded: &[u8; 32]) -> bool {
    let y = y_of(encoded);
    let y8 = y_of(&ORDER_8_Y);
    [ZERO, ONE, P_MINUS_ONE, y8, neg(&y8), P, add_raw(&P, &ONE)].contains(&y)
}

/// A field element modulo p = 2^255 − 19: four little-endian 64-bit limbs holding any value
/// below 2^256 ([`canonical`] reduces it below p).
type Fe = [u64; 4];

const ZERO: Fe = [0; 4];
const ONE: Fe = [1, 0, 0, 0];
/// p = 2^255 − 19.
const P: Fe = [
    0xffff_ffff_ffff_ffed,
    u64::MAX,
    u64::MAX,
    0x7fff_ffff_ffff_ffff,
];
/// p − 1, that is −1.
const P_MINUS_ONE: Fe = [
    0xffff_ffff_ffff_ffec,
    u64::MAX,
    u64::MAX,
    0x7fff_ffff_ffff_ffff,
];
/// (p − 1)/2 = 2^254 − 10.
const HALF_P_MINUS_ONE: Fe = [
    0xffff_ffff_ffff_fff6,
    u64::MAX,
    u64::MAX,
    0x3fff_ffff_ffff_ffff,
];
/// d = −121665/121666 (RFC 8032 §5.1).
const D: Fe = [
    0x75eb_4dca_1359_78a3,
    0x0070_0a4d_4141_d8ab,
    0x8cc7_4079_7779_e898,
    0x5203_6cee_2b6f_fe73,
];
/// The `y` of the points of order 8 (the other is its negation), as encoded.
const ORDER_8_Y: [u8; 32] = [
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
    0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
];

/// The `y` of an encoded point: its low 255 bits, not reduced.
fn y_of(encoded: &[u8; 32]) -> Fe {
    let mut y = ZERO;
    for (limb, bytes) in y.iter_mut().zip(encoded.chunks_exact(8)) {
        *limb = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    }
    y[3] &= 0x7fff_ffff_ffff_ffff;
    y
}

/// `r` + carry·2^256, folded back below 2^256 (2^256 ≡ 38 modulo p).
fn fold(mut r: Fe, mut carry: u64) -> Fe {
    while carry != 0 {
        let mut c = u128::from(carry) * 38;
        for limb in &mut r {
            let acc = u128::from(*limb) + c;
            *limb = acc as u64;
            c = acc >> 64;
        }
        carry = c as u64;
    }
    r
}

/// a + b, without reduction modulo p: the sum and its carry out of 2^256.
fn add_with_carry(a: &Fe, b: &Fe) -> (Fe, u64) {
    let mut r = ZERO;
    let mut c = 0u128;
    for i in 0..4 {
        let acc = u128::from(a[i]) + u128::from(b[i]) + c;
        r[i] = acc as u64;
        c = acc >> 64;
    }
    (r, c as u64)
}

/// a + b as integers, for sums known to stay below 2^256.
fn add_raw(a: &Fe, b: &Fe) -> Fe {
    add_with_carry(a, b).0
}

/// a + b modulo p.
fn add(a: &Fe, b: &Fe) -> Fe {
    let (r, carry) = add_with_carry(a, b);
    fold(r, carry)
}

/// a − b as integers, for a ≥ b.
fn sub(a: &Fe, b: &Fe) -> Fe {
    let mut r = ZERO;
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(borrow);
        r[i] = d;
        borrow = u64::from(b1 || b2);
    }
    r
}

/// −a modulo p, for a canonical `a`.
fn neg(a: &Fe) -> Fe {
    sub(&P, a)
}

/// a · b modulo p.
fn mul(a: &Fe, b: &Fe) -> Fe {
    let mut t = [0u64; 8];
    for i in 0..4 {
        let mut c = 0u128;
        for j in 0..4 {
            let acc = u128::from(t[i + j]) + u128::from(a[i]) * u128::from(b[j]) + c;
            t[i + j] = acc as u64;
            c = acc >> 64;
        }
        t[i + 4] = c as u64;
    }
    let mut r = ZERO;
    let mut c = 0u128;
    for i in 0..4 {
        let acc = u128::from(t[i]) + u128::from(t[i + 4]) * 38 + c;
        r[i] = acc as u64;
        c = acc >> 64;
    }
    fold(r, c as u64)
}

/// a^e modulo p.
fn pow(a: &Fe, e: &Fe) -> Fe {
    let mut r = ONE;
    for bit in (0..256).rev() {
        r = mul(&r, &r);
        if (e[bit / 64] >> (bit % 64)) & 1 == 1 {
            r = mul(&r, a);
        }
    }
    r
}

/// `a` reduced below p.
fn canonical(mut a: Fe) -> Fe {
    while !below(&a, &P) {
        a = sub(&a, &P);
    }
    a
}

/// a < b.
fn below(a: &Fe, b: &Fe) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

#[cfg(test)]
mod tests;
