//! The proto descriptor as a fuzzing aid: every RPC's request type, requests generated field by
//! field with hostile values, byte-level mutations, and a walk over an accepted request's strings
//! and timestamps.

use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value,
};

/// The package of the services and their messages.
const PACKAGE: &str = "consentry.v1";

/// The descriptor set the server's reflection serves: its services and their messages.
pub struct Protos(DescriptorPool);

/// The descriptor set, decoded once.
pub fn protos() -> &'static Protos {
    static PROTOS: OnceLock<Protos> = OnceLock::new();
    PROTOS.get_or_init(|| {
        let pool = DescriptorPool::decode(consentry::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        Protos(pool)
    })
}

impl Protos {
    /// The request types of a service (`AdminService`), in the order of its rpcs.
    pub fn requests(&self, service: &str) -> Vec<String> {
        self.0
            .get_service_by_name(&format!("{PACKAGE}.{service}"))
            .map(|s| s.methods().map(|m| m.input().name().to_owned()).collect())
            .unwrap_or_default()
    }

    /// A `consentry.v1` message by its short name.
    pub fn message(&self, name: &str) -> MessageDescriptor {
        self.0
            .get_message_by_name(&format!("{PACKAGE}.{name}"))
            .unwrap_or_else(|| panic!("no message {name} in the descriptor set"))
    }

    /// The names of a message's top-level fields.
    pub fn fields(&self, name: &str) -> Vec<String> {
        let m = self.message(name);
        m.fields().map(|f| f.name().to_owned()).collect()
    }
}

/// Choices drawn from a proptest-generated stream; zero once the stream is used up (so a shorter
/// stream shrinks towards emptier requests).
pub struct Choices<'a> {
    data: &'a [u32],
    at: usize,
}

impl<'a> Choices<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u32]) -> Self {
        Self { data, at: 0 }
    }

    /// A number below `n` (0 when `n` is 0 or the stream is used up).
    pub fn below(&mut self, n: usize) -> usize {
        let v = self.data.get(self.at).copied().unwrap_or(0) as usize;
        self.at += 1;
        if n == 0 { 0 } else { v % n }
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Values that ids, paths, principals, permissions and tokens are made of.
const WORDS: &[&str] = &[
    "",
    "t1",
    "acme",
    "alice",
    "app-1",
    "c1",
    "g1",
    "p1",
    "x",
    "/",
    "/hr",
    "/hr/team",
    "/hr/team/docs",
    "user:alice",
    "client:c1",
    "app:app-1",
    "READ",
    "FULL_CONTROL",
    "EDIT_ITEMS",
    "Sites.Read",
    "r0",
    "r1",
    "r18446744073709551615",
    "r18446744073709551616",
    "prod",
    "a:b",
    "..",
    "/./",
    "*",
    "%00",
    "\\",
    "\"",
];

/// Characters that break parsers: separators, controls, NUL, multi-byte and the largest scalar.
const CHARS: &[char] = &[
    'a',
    'Z',
    '0',
    '9',
    '-',
    '_',
    '.',
    '/',
    ':',
    ' ',
    '\0',
    '\n',
    '\t',
    '\u{7f}',
    '\u{85}',
    '\u{200b}',
    '\u{202e}',
    'é',
    '€',
    '\u{10ffff}',
    '%',
    '"',
    '\\',
    '*',
    '@',
];

/// Well-formed values for a field of this name, so that generated requests get past the first
/// checks often enough to exercise the later ones.
fn plausible(field: &str) -> &'static [&'static str] {
    match field {
        "tenant_id" => &["acme", "t1"],
        "user_id" | "on_behalf_of" => &["alice", "bob@acme"],
        "app_id" => &["app-1", "a:b"],
        "client_id" => &["c1"],
        "group_id" => &["g1"],
        "permission_id" => &["p1"],
        "external_id" | "name" | "description" | "environment" | "audience" | "target" => {
            &["ext-1", "Human Resources", "production"]
        }
        "resource" => &["/", "/hr", "/hr/team/docs"],
        "scope" | "scopes" | "allowed_scopes" => &["Sites.Read", "files.write"],
        "permission" => &["READ", "FULL_CONTROL", "EDIT_ITEMS"],
        "principal" | "grantors" | "visible_to" | "actor" => {
            &["user:alice", "app:app-1", "client:c1"]
        }
        "tenants" => &["acme", "*"],
        "at_least_as_fresh" => &["r0", "r1"],
        _ => &[],
    }
}

/// A value for a string field named `field`: usually well-formed for that field, else hostile.
pub fn field_string(ch: &mut Choices, field: &str) -> String {
    let good = plausible(field);
    if !good.is_empty() && ch.below(3) != 0 {
        ch.pick(good).to_owned()
    } else {
        string(ch)
    }
}

/// A hostile string: a plausible value, a mangled one, or a very long one.
pub fn string(ch: &mut Choices) -> String {
    let word = ch.pick(WORDS);
    match ch.below(8) {
        0 | 1 => word.to_owned(),
        2 => format!("{word}{}", ch.pick(CHARS)),
        3 => format!("{}{word}", ch.pick(CHARS)),
        4 => {
            let len = ch.below(48);
            (0..len).map(|_| ch.pick(CHARS)).collect()
        }
        5 => {
            let n = ch.pick(&[64, 129, 255, 256, 257, 1024, 1025, 4096, 10_000]);
            let c = ch.pick(&['a', '/', 'é', '\0', '9']);
            format!("{word}{}", c.to_string().repeat(n))
        }
        6 => {
            let n = ch.pick(&[2, 33, 100, 1000]);
            format!("/{}", vec!["a"; n].join("/"))
        }
        _ => format!("{word}:{}", ch.pick(WORDS)),
    }
}

/// A hostile integer for a field of kind `kind`: small, boundary, negative, or extreme.
fn integer(ch: &mut Choices, kind: &Kind) -> i64 {
    const SMALL: &[i64] = &[0, 1, 2, 3, 4, 5, 6, 7, 99, -1];
    const WIDE: &[i64] = &[
        -62_135_596_801, // a second before year 1
        -62_135_596_800, // year 1
        253_402_300_799, // the last second of year 9999
        253_402_300_800, // year 10000
        1_700_000_000,
        999_999_999,
        1_000_000_000,
        i64::MAX,
        i64::MIN,
    ];
    const INT32: &[i64] = &[i32::MAX as i64, i32::MIN as i64, 500, 501, 86_400, 86_401];
    match (ch.below(3), kind) {
        (0 | 1, _) => ch.pick(SMALL),
        (_, Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Fixed64) => {
            ch.pick(WIDE)
        }
        _ => ch.pick(INT32),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, number: u32, wire: u64) {
    varint(out, ((number as u64) << 3) | wire);
}

fn delimited(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    key(out, number, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The encoding of a `name` message (a short name in `consentry.v1`) whose fields are hostile
/// values chosen from `ch`; nested messages down to `depth`.
pub fn generate(protos: &Protos, name: &str, ch: &mut Choices, depth: usize) -> Vec<u8> {
    encoding(&protos.message(name), ch, depth)
}

/// The encoding of a `message` whose fields are hostile values chosen from `ch`, field by field
/// in the order of their numbers; nested messages down to `depth`.
fn encoding(message: &MessageDescriptor, ch: &mut Choices, depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for field in message.fields() {
        let count = if field.is_list() {
            ch.pick(&[0, 0, 1, 1, 2, 3, 5, 33])
        } else {
            usize::from(ch.below(4) != 0)
        };
        let (number, kind) = (field.number(), field.kind());
        for _ in 0..count {
            match &kind {
                Kind::String | Kind::Bytes => {
                    if ch.below(40) == 0 {
                        delimited(&mut out, number, &[b'a', 0xff, 0xfe]);
                    } else {
                        delimited(&mut out, number, field_string(ch, field.name()).as_bytes());
                    }
                }
                Kind::Message(inner) if depth > 0 => {
                    let inner = encoding(inner, ch, depth - 1);
                    delimited(&mut out, number, &inner);
                }
                Kind::Message(_) => {}
                Kind::Bool => {
                    key(&mut out, number, 0);
                    varint(&mut out, ch.pick(&[0, 1, 1, 2]));
                }
                Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
                    key(&mut out, number, 1);
                    out.extend_from_slice(&(integer(ch, &kind) as u64).to_le_bytes());
                }
                Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
                    key(&mut out, number, 5);
                    out.extend_from_slice(&(integer(ch, &kind) as u32).to_le_bytes());
                }
                _ => {
                    key(&mut out, number, 0);
                    varint(&mut out, integer(ch, &kind) as u64);
                }
            }
        }
    }
    out
}

/// One edit of an encoding.
pub type Mutation = (u16, u8, u8);

/// `bytes` after `mutations`, each at a position taken modulo the length: overwrite, insert,
/// delete, truncate, or overwrite with a boundary byte.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for &(at, value, how) in mutations {
        let at = if bytes.is_empty() {
            0
        } else {
            usize::from(at) % bytes.len()
        };
        match how % 5 {
            0 if !bytes.is_empty() => bytes[at] = value,
            1 => bytes.insert(at, value),
            2 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            4 if !bytes.is_empty() => bytes[at] = [0x00, 0x7f, 0x80, 0xff][usize::from(value % 4)],
            _ => bytes.push(value),
        }
    }
    bytes
}

/// A string or timestamp found in a request, with its field path (`items.app_id`: the elements
/// of a repeated field share its path).
pub enum Leaf {
    /// A string field's value.
    Str(String, String),
    /// A `google.protobuf.Timestamp`: its seconds.
    Timestamp(String, i64),
}

/// The strings and timestamps of a well-formed encoding (prost's own) of the message `name` (a
/// short name in `consentry.v1`), each with its field path.
pub fn leaves(protos: &Protos, name: &str, bytes: &[u8]) -> Vec<Leaf> {
    let message = DynamicMessage::decode(protos.message(name), bytes)
        .unwrap_or_else(|e| panic!("prost's encoding of {name} does not decode: {e}"));
    let mut out = Vec::new();
    walk(&message, "", &mut out);
    out
}

/// The leaves of the fields `message` holds, below `path`.
fn walk(message: &DynamicMessage, path: &str, out: &mut Vec<Leaf>) {
    let timestamp = message.descriptor().full_name() == "google.protobuf.Timestamp";
    for (field, value) in message.fields() {
        let here = if path.is_empty() {
            field.name().to_owned()
        } else {
            format!("{path}.{}", field.name())
        };
        let values = match value {
            Value::List(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        for value in values {
            match value {
                Value::String(s) => out.push(Leaf::Str(here.clone(), s.clone())),
                Value::Message(inner) => walk(inner, &here, out),
                Value::I64(seconds) if timestamp && field.name() == "seconds" => {
                    out.push(Leaf::Timestamp(path.to_owned(), *seconds));
                }
                _ => {}
            }
        }
    }
}
