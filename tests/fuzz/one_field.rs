//! One field at a time: an accepted request with one of its fields made hostile, each field of
//! the request and of the nested messages it holds in turn: a NUL appended to a string (or, for
//! a string it leaves empty, a lone NUL), an enum value no version of the contract has, a
//! timestamp after year 9999. No field takes any of these, so every one must be refused; a field
//! whose parse is missing is then found from any accepted request, not only from the rare
//! generated one that is hostile in that very field and well-formed in all the others.

use prost_reflect::Kind;

use crate::describe::protos;

/// The package of the request messages, as full names in the descriptor spell it.
const PACKAGE: &str = "consentry.v1.";

/// An enum number that no enum of the contract has.
const UNKNOWN_ENUM: u64 = 1000;

/// The first second of year 10000, in Unix seconds.
const YEAR_10000: u64 = 253_402_300_800;

/// One top-level record of an encoding: its field number and, for a length-delimited record,
/// its payload.
struct Record<'a> {
    number: u32,
    whole: &'a [u8],
    payload: Option<&'a [u8]>,
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

/// The records of a well-formed encoding (prost's own), or `None` if it is not one.
fn records(bytes: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = read_varint(bytes, &mut at)?;
        let number = u32::try_from(key >> 3).ok()?;
        let mut payload = None;
        match key & 7 {
            0 => {
                read_varint(bytes, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                payload = Some(bytes.get(at..end)?);
                at = end;
            }
            _ => return None,
        }
        out.push(Record {
            number,
            whole: bytes.get(start..at)?,
            payload,
        });
    }
    Some(out)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited record.
fn delimited(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, ((number as u64) << 3) | 2);
    varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A varint record.
fn scalar(number: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, (number as u64) << 3);
    varint(&mut out, value);
    out
}

/// `bytes` with `record` after them: the field's value for a singular field (the last
/// occurrence wins, and a message merges into the one before), one more element for a repeated
/// one (an unpacked element is read beside packed ones).
fn appended(bytes: &[u8], record: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(record);
    out
}

/// `records` with record `at` replaced by `with`.
fn replaced(records: &[Record<'_>], at: usize, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        out.extend_from_slice(if i == at { with } else { r.whole });
    }
    out
}

/// The encoded message `name` (a short name in `consentry.v1`) with each of its fields made
/// hostile in turn: the field's path and the whole encoding. An absent string field is added
/// holding a NUL; a nested message of the package is followed where the encoding holds one.
pub fn one_field_at_a_time(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(records) = records(bytes) else {
        return out;
    };
    for field in protos().message(name).fields() {
        let present: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.number == field.number() && r.payload.is_some())
            .map(|(i, _)| i)
            .collect();
        let path = |k: usize| {
            if field.is_list() {
                format!("{}[{k}]", field.name())
            } else {
                field.name().to_owned()
            }
        };
        // What an appended record sets: the field, or a repeated field's new last element.
        let last = || {
            if field.is_list() {
                format!("{}[last]", field.name())
            } else {
                field.name().to_owned()
            }
        };
        match field.kind() {
            Kind::String => {
                for (k, &at) in present.iter().enumerate() {
                    let mut value = records[at].payload.unwrap_or_default().to_vec();
                    value.push(0);
                    let with = delimited(field.number(), &value);
                    out.push((path(k), replaced(&records, at, &with)));
                }
                if present.is_empty() {
                    let with = delimited(field.number(), b"\0");
                    out.push((path(0), appended(bytes, &with)));
                }
            }
            Kind::Enum(_) => {
                let with = scalar(field.number(), UNKNOWN_ENUM);
                out.push((last(), appended(bytes, &with)));
            }
            Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
                let with = delimited(field.number(), &scalar(1, YEAR_10000));
                out.push((last(), appended(bytes, &with)));
            }
            Kind::Message(m) => {
                let Some(inner_name) = m.full_name().strip_prefix(PACKAGE) else {
                    continue;
                };
                for (k, &at) in present.iter().enumerate() {
                    let inner = records[at].payload.unwrap_or_default();
                    for (inner_path, inner) in one_field_at_a_time(inner_name, inner) {
                        let with = delimited(field.number(), &inner);
                        out.push((
                            format!("{}.{inner_path}", path(k)),
                            replaced(&records, at, &with),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_field_is_made_hostile_once_and_the_rest_kept() {
    use consentry::proto::{CheckAccessBatchRequest, CheckAccessRequest};
    use prost::Message;
    let item = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        ..Default::default()
    };
    let batch = CheckAccessBatchRequest {
        items: vec![item.clone(), item],
        consistency: None,
    };
    let variants = one_field_at_a_time("CheckAccessBatchRequest", &batch.encode_to_vec());
    let paths: Vec<&str> = variants.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"items[0].tenant_id"), "{paths:?}");
    assert!(paths.contains(&"items[1].resource"), "{paths:?}");
    let (_, bytes) = variants
        .iter()
        .find(|(p, _)| p == "items[1].app_id")
        .expect("the second item's app");
    let changed = CheckAccessBatchRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(changed.items[1].app_id, "crm\0");
    assert_eq!(changed.items[0].app_id, "crm");
    assert_eq!(changed.items[1].tenant_id, "acme");
    let (_, bytes) = variants
        .iter()
        .find(|(p, _)| p == "items[0].scope")
        .expect("an empty field is set");
    let changed = CheckAccessBatchRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(changed.items[0].scope, "\0");

    use consentry::proto::{ListAuditEventsRequest, PutUserRequest};
    let put = PutUserRequest {
        tenant_id: "acme".into(),
        user_id: "alice".into(),
        roles: vec![1, 2],
    };
    let variants = one_field_at_a_time("PutUserRequest", &put.encode_to_vec());
    let (path, bytes) = variants
        .iter()
        .find(|(p, _)| p.starts_with("roles"))
        .expect("the roles");
    assert_eq!(path, "roles[last]");
    let changed = PutUserRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(changed.roles, [1, 2, UNKNOWN_ENUM as i32]);
    let list = ListAuditEventsRequest {
        since: Some(prost_types::Timestamp {
            seconds: 5,
            nanos: 7,
        }),
        ..Default::default()
    };
    let variants = one_field_at_a_time("ListAuditEventsRequest", &list.encode_to_vec());
    let (_, bytes) = variants
        .iter()
        .find(|(p, _)| p == "since")
        .expect("the time");
    let changed = ListAuditEventsRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(changed.since.map(|t| t.seconds), Some(YEAR_10000 as i64));
}
