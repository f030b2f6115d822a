//! Reading a PKCS#8 private key's structure (RFC 5958 `OneAsymmetricKey`, v1 or v2) far enough
//! to name its algorithm and to say in words what is malformed; ring then reads an Ed25519 key
//! itself. Nothing here interprets key material.

/// The object identifier of Ed25519 keys (RFC 8410).
pub const ED25519: &str = "1.3.101.112";

/// The fields of a PKCS#8 document, read but not interpreted.
#[derive(Debug, PartialEq, Eq)]
pub struct PrivateKeyInfo<'a> {
    /// The algorithm's object identifier, dotted (`1.3.101.112`).
    pub algorithm: String,
    /// Whether the algorithm identifier carries parameters.
    pub parameters: bool,
    /// The contents of the `privateKey` OCTET STRING.
    pub private_key: &'a [u8],
    /// The bits of the `publicKey` of a v2 document.
    pub public_key: Option<&'a [u8]>,
}

impl<'a> PrivateKeyInfo<'a> {
    /// Reads a DER document: a SEQUENCE of the version (v1 without a public key, v2 with one),
    /// the algorithm identifier, the private key, optional attributes (`[0]`), the public key
    /// (`[1] IMPLICIT BIT STRING`) and nothing else but later context-specific fields. The
    /// problem is in words and never quotes the key.
    pub fn read(der: &'a [u8]) -> Result<Self, String> {
        let mut outer = Der(der);
        let body = outer.expect(SEQUENCE, "the key's SEQUENCE")?;
        if !outer.0.is_empty() {
            return Err("data follows the key's SEQUENCE".to_owned());
        }
        let mut fields = Der(body);
        let version = match fields.expect(INTEGER, "the version")? {
            [0] => 1,
            [1] => 2,
            _ => return Err("the version is neither 1 nor 2".to_owned()),
        };
        let mut identifier = Der(fields.expect(SEQUENCE, "the algorithm identifier")?);
        let algorithm = dotted(identifier.expect(OID, "the algorithm's OID")?)?;
        let parameters = !identifier.0.is_empty();
        if parameters {
            identifier.read("the algorithm's parameters")?;
            if !identifier.0.is_empty() {
                return Err("the algorithm identifier has more than an OID and parameters".into());
            }
        }
        let private_key = fields.expect(OCTET_STRING, "the private key")?;
        if fields.peek() == Some(ATTRIBUTES) {
            fields.read("the attributes")?;
        }
        let public_key = match fields.peek() {
            Some(PUBLIC_KEY) => match fields.read("the public key")?.1 {
                [0, bits @ ..] => Some(bits),
                _ => return Err("the public key is not a whole number of bytes".to_owned()),
            },
            Some(LEGACY_PUBLIC_KEY) => {
                return Err("the public key is tagged as a constructed field, an early \
                            non-standard form of PKCS#8 v2"
                    .to_owned());
            }
            _ => None,
        };
        match (version, public_key.is_some()) {
            (1, true) => return Err("a version 1 key has a public key".to_owned()),
            (2, false) => return Err("a version 2 key has no public key".to_owned()),
            _ => {}
        }
        while let Some(tag) = fields.peek() {
            if tag & CLASS != CONTEXT_SPECIFIC {
                return Err("an unexpected field follows the private key".to_owned());
            }
            fields.read("a later field")?;
        }
        Ok(Self {
            algorithm,
            parameters,
            private_key,
            public_key,
        })
    }
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
/// `[0]`, constructed: the attributes.
const ATTRIBUTES: u8 = 0xa0;
/// `[1]`, primitive: the public key as RFC 5958 tags it (IMPLICIT BIT STRING).
const PUBLIC_KEY: u8 = 0x81;
/// `[1]`, constructed: the public key as some early PKCS#8 v2 writers tagged it.
const LEGACY_PUBLIC_KEY: u8 = 0xa1;
const CLASS: u8 = 0xc0;
const CONTEXT_SPECIFIC: u8 = 0x80;

/// DER values, read one after another.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next value's tag.
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next value: its tag and contents. Lengths must be DER's (definite, minimal).
    fn read(&mut self, what: &str) -> Result<(u8, &'a [u8]), String> {
        let cut = || format!("{what} is cut short");
        let [tag, first, rest @ ..] = self.0 else {
            return Err(cut());
        };
        if tag & 0x1f == 0x1f {
            return Err(format!("{what} has a tag PKCS#8 never uses"));
        }
        let (length, rest) = if *first < 0x80 {
            (usize::from(*first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            let not_der = || format!("{what} has a length that is not DER");
            if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
                return Err(not_der());
            }
            let length = rest[..n]
                .iter()
                .fold(0usize, |l, b| (l << 8) | usize::from(*b));
            if length < 0x80 {
                return Err(not_der());
            }
            (length, &rest[n..])
        };
        if rest.len() < length {
            return Err(cut());
        }
        let (contents, after) = rest.split_at(length);
        self.0 = after;
        Ok((*tag, contents))
    }

    /// The contents of the next value, `what`, which must have `tag`.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        match self.peek() {
            Some(t) if t == tag => Ok(self.read(what)?.1),
            _ => Err(format!("{what} is missing")),
        }
    }
}

/// An OID's contents, dotted.
fn dotted(contents: &[u8]) -> Result<String, String> {
    let bad = || "the algorithm's OID is malformed".to_owned();
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc: u64 = 0;
    let mut fresh = true;
    for &byte in contents {
        if fresh && byte == 0x80 {
            return Err(bad());
        }
        arc = arc
            .checked_mul(128)
            .ok_or_else(bad)?
            .checked_add(u64::from(byte & 0x7f))
            .ok_or_else(bad)?;
        fresh = byte & 0x80 == 0;
        if fresh {
            arcs.push(arc);
            arc = 0;
        }
    }
    let (Some(&first), true) = (arcs.first(), fresh) else {
        return Err(bad());
    };
    let (top, second) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut text = format!("{top}.{second}");
    for arc in &arcs[1..] {
        text.push_str(&format!(".{arc}"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn oids_are_dotted_as_written() {
        assert_eq!(dotted(&[0x2b, 0x65, 0x70]).unwrap(), ED25519);
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]).unwrap(),
            "1.2.840.10045.2.1"
        );
        assert_eq!(dotted(&[0x88, 0x37]).unwrap(), "2.999");
        for bad in [&[][..], &[0x2b, 0x86], &[0x2b, 0x80, 0x01], &[0xff; 11]] {
            assert!(dotted(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lengths_must_be_minimal_and_within_the_document() {
        let mut der = Der(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]);
        assert!(der.read("x").unwrap_err().contains("not DER"));
        let mut der = Der(&[0x04, 0x03, 1, 2]);
        assert!(der.read("x").unwrap_err().contains("cut short"));
        let mut der = Der(&[0x04, 0x80]);
        assert!(der.read("x").unwrap_err().contains("not DER"));
        let long = [&[0x04, 0x81, 0x80][..], &[7; 0x80]].concat();
        let mut der = Der(&long);
        assert_eq!(der.read("x").unwrap().1.len(), 0x80);
    }
}
