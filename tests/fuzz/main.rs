//! Hostile input: property-based fuzzing over raw bytes (proptest; see docs/decisions.md,
//! "Hostile input"). Each target feeds arbitrary and mutated input to one parser the server runs
//! on what a caller or an operator hands it, and asserts that nothing panics and that every
//! rejection is a clear error:
//!
//! * `requests`: every request type of both services, decoded with prost from arbitrary bytes,
//!   from requests generated field by field from the proto descriptor, and from mutated
//!   encodings of those, then parsed by the function its handler calls (`parsers.rs` lists
//!   them); a rejection is an `INVALID_ARGUMENT` naming a field of the request, and an
//!   accepted request with any one field made hostile (`one_field.rs`) is refused;
//! * `tokens`: page tokens (`service::paging`) and revision tokens (`domain::revision`);
//! * `paths`: resource paths (`domain::path`);
//! * `demo`: the `--demo` world loader (`demo::load_json`) on arbitrary and mutated JSON;
//! * `authzen`: the AuthZEN readers (`convert::authzen`) on arbitrary JSON and on well-formed
//!   requests with one member replaced;
//! * `mesh`: the placement of Envoy's ext_authz requests (`convert::envoy::place`) on decoded
//!   bytes and on requests of hostile paths, methods, headers, extensions and claims.
//!
//! By default each target runs `PROPTEST_CASES` cases (256 under `scripts/test`);
//! `CONSENTRY_FUZZ_SECONDS` turns that into a time budget per target (`scripts/fuzz`).
//! A wrong answer (an accepted NUL, an over-long message, an out-of-range timestamp, ...) fails
//! its target, naming the kind of finding and an example.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod authzen;
mod demo;
mod describe;
mod harness;
mod mesh;
mod one_field;
mod parsers;
mod paths;
mod requests;
mod tokens;
