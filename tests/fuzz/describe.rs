//! The proto descriptor as a fuzzing aid: every RPC's request type, requests generated field by
//! field with hostile values, byte-level mutations, and a walk over an accepted request's strings
//! and timestamps.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

/// The messages of the descriptor set by full name (`.consentry.v1.CheckAccessRequest`), and
/// each service's request types by short name.
pub struct Protos {
    messages: HashMap<String, DescriptorProto>,
    services: HashMap<String, Vec<String>>,
}

/// The descriptor set the server's reflection serves, indexed once.
pub fn protos() -> &'static Protos {
    static PROTOS: OnceLock<Protos> = OnceLock::new();
    PROTOS.get_or_init(|| {
        let set = FileDescriptorSet::decode(consentry::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let mut messages = HashMap::new();
        let mut services = HashMap::new();
        for file in &set.file {
            let package = file.package();
            for m in &file.message_type {
                messages.insert(format!(".{package}.{}", m.name()), m.clone());
            }
            for s in &file.service {
                let inputs = s
                    .method
                    .iter()
                    .map(|m| m.input_type().rsplit('.').next().unwrap_or("").to_owned())
                    .collect();
                services.insert(s.name().to_owned(), inputs);
            }
        }
        Protos { messages, services }
    })
}

impl Protos {
    /// The request types of a service (`AdminService`), in the order of its rpcs.
    pub fn requests(&self, service: &str) -> Vec<String> {
        self.services.get(service).cloned().unwrap_or_default()
    }

    /// A `consentry.v1` message by its short name.
    pub fn message(&self, name: &str) -> &DescriptorProto {
        self.messages
            .get(&format!(".consentry.v1.{name}"))
            .unwrap_or_else(|| panic!("no message {name} in the descriptor set"))
    }

    /// The names of a message's top-level fields.
    pub fn fields(&self, name: &str) -> Vec<String> {
        let m = self.message(name);
        m.field.iter().map(|f| f.name().to_owned()).collect()
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

/// A hostile integer for a field of type `ty`: small, boundary, negative, or extreme.
fn integer(ch: &mut Choices, ty: Type) -> i64 {
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
    match (ch.below(3), ty) {
        (0 | 1, _) => ch.pick(SMALL),
        (_, Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Sfixed64 | Type::Fixed64) => {
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

fn key(out: &mut Vec<u8>, number: i32, wire: u64) {
    varint(out, ((number as u64) << 3) | wire);
}

fn delimited(out: &mut Vec<u8>, number: i32, bytes: &[u8]) {
    key(out, number, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The encoding of a `name` message whose fields are hostile values chosen from `ch`; nested
/// messages down to `depth`.
pub fn generate(protos: &Protos, name: &str, ch: &mut Choices, depth: usize) -> Vec<u8> {
    let full = if name.starts_with('.') {
        name.to_owned()
    } else {
        format!(".consentry.v1.{name}")
    };
    let Some(message) = protos.messages.get(&full) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for field in &message.field {
        let count = if field.label() == Label::Repeated {
            ch.pick(&[0, 0, 1, 1, 2, 3, 5, 33])
        } else {
            usize::from(ch.below(4) != 0)
        };
        for _ in 0..count {
            let number = field.number();
            match field.r#type() {
                Type::String | Type::Bytes => {
                    if ch.below(40) == 0 {
                        delimited(&mut out, number, &[b'a', 0xff, 0xfe]);
                    } else {
                        delimited(&mut out, number, field_string(ch, field.name()).as_bytes());
                    }
                }
                Type::Message if depth > 0 => {
                    let inner = generate(protos, field.type_name(), ch, depth - 1);
                    delimited(&mut out, number, &inner);
                }
                Type::Message | Type::Group => {}
                Type::Bool => {
                    key(&mut out, number, 0);
                    varint(&mut out, ch.pick(&[0, 1, 1, 2]));
                }
                Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                    key(&mut out, number, 1);
                    out.extend_from_slice(&(integer(ch, field.r#type()) as u64).to_le_bytes());
                }
                Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                    key(&mut out, number, 5);
                    out.extend_from_slice(&(integer(ch, field.r#type()) as u32).to_le_bytes());
                }
                ty => {
                    key(&mut out, number, 0);
                    varint(&mut out, integer(ch, ty) as u64);
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

/// A string or timestamp found in a request, with its field path.
pub enum Leaf {
    /// A string field's value.
    Str(String, String),
    /// A `google.protobuf.Timestamp`: its seconds.
    Timestamp(String, i64),
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The strings and timestamps of an encoded `name` message (re-encoded by prost, so
/// well-formed), each with its field path.
pub fn leaves(protos: &Protos, name: &str, bytes: &[u8], path: &str, out: &mut Vec<Leaf>) {
    let Some(message) = protos.messages.get(name) else {
        return;
    };
    let mut at = 0;
    while at < bytes.len() {
        let Some(k) = read_varint(bytes, &mut at) else {
            return;
        };
        let (number, wire) = ((k >> 3) as i32, k & 7);
        let field = message.field.iter().find(|f| f.number() == number);
        let here = field.map_or(String::new(), |f| {
            if path.is_empty() {
                f.name().to_owned()
            } else {
                format!("{path}.{}", f.name())
            }
        });
        match wire {
            0 => {
                let Some(v) = read_varint(bytes, &mut at) else {
                    return;
                };
                if name == ".google.protobuf.Timestamp" && number == 1 {
                    out.push(Leaf::Timestamp(path.to_owned(), v as i64));
                }
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let Some(len) = read_varint(bytes, &mut at) else {
                    return;
                };
                let end = at.saturating_add(len as usize).min(bytes.len());
                let inner = &bytes[at..end];
                at = end;
                match field.map(|f| (f.r#type(), f.type_name())) {
                    Some((Type::String, _)) => {
                        out.push(Leaf::Str(here, String::from_utf8_lossy(inner).into_owned()));
                    }
                    Some((Type::Message, type_name)) => {
                        leaves(protos, type_name, inner, &here, out);
                    }
                    _ => {}
                }
            }
            _ => return,
        }
    }
}
