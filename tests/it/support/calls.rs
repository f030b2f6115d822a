//! Calling the services: who a request comes from ([`Who`], [`req`], [`boot`]) and what came
//! back ([`ok`], [`fails`], and [`Cases`] for tables of status codes that report every mismatch).

use std::fmt::{Debug, Display};
use std::panic::Location;

use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};

use super::server::BOOTSTRAP_KEY;

/// Who a request comes from: its `authorization` header and `x-consentry-user`, if any.
#[derive(Debug, Clone)]
pub struct Who {
    authorization: Option<String>,
    user: Option<String>,
}

impl Who {
    /// A client by its key.
    pub fn key(key: &str) -> Who {
        Who::header(&format!("Bearer {key}"))
    }

    /// The bootstrap client (every capability, every tenant).
    pub fn boot() -> Who {
        Who::key(BOOTSTRAP_KEY)
    }

    /// Any `authorization` header, well-formed or not.
    pub fn header(value: &str) -> Who {
        Who {
            authorization: Some(value.to_owned()),
            user: None,
        }
    }

    /// No `authorization` header at all.
    pub fn nobody() -> Who {
        Who {
            authorization: None,
            user: None,
        }
    }

    /// The same client naming `user` in `x-consentry-user`.
    pub fn user(&self, user: &str) -> Who {
        Who {
            user: Some(user.to_owned()),
            ..self.clone()
        }
    }

    /// `message` as a request from this caller.
    pub fn r<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(value.as_str()).unwrap(),
            );
        }
        if let Some(user) = &self.user {
            request.metadata_mut().insert(
                "x-consentry-user",
                MetadataValue::try_from(user.as_str()).unwrap(),
            );
        }
        request
    }
}

/// `message` as a request with `authorization: Bearer <key>` and, if given, `x-consentry-user`.
pub fn req<T>(message: T, key: &str, user: Option<&str>) -> Request<T> {
    let who = Who::key(key);
    match user {
        Some(user) => who.user(user).r(message),
        None => who.r(message),
    }
}

/// `message` as the bootstrap client, optionally acting as `user`.
pub fn boot<T>(message: T, user: Option<&str>) -> Request<T> {
    req(message, BOOTSTRAP_KEY, user)
}

/// The reply of a call that must succeed.
#[track_caller]
pub fn ok<T>(result: Result<Response<T>, Status>) -> T {
    match result {
        Ok(reply) => reply.into_inner(),
        Err(s) => panic!("expected OK, got {:?}: {}", s.code(), s.message()),
    }
}

/// Why `result` is not a failure with `code` and a message mentioning each of `needles`, if it
/// is not; otherwise its message.
fn mismatch<T: Debug>(
    result: Result<T, Status>,
    code: Code,
    needles: &[&str],
) -> Result<String, String> {
    match result {
        Ok(reply) => Err(format!("expected {code:?} {needles:?}, got OK: {reply:?}")),
        Err(s) if s.code() != code => Err(format!(
            "expected {code:?} {needles:?}, got {:?}: {}",
            s.code(),
            s.message()
        )),
        Err(s) => match needles.iter().find(|n| !s.message().contains(**n)) {
            Some(needle) => Err(format!(
                "the {code:?} message {:?} does not mention {needle:?}",
                s.message()
            )),
            None => Ok(s.message().to_owned()),
        },
    }
}

/// Asserts a call failed with `code` and a message mentioning `needle`; returns the message.
#[track_caller]
pub fn fails<T: Debug>(result: Result<T, Status>, code: Code, needle: &str) -> String {
    mismatch(result, code, &[needle]).unwrap_or_else(|why| panic!("{why}"))
}

/// A table of cases checked together: each check records a mismatch instead of stopping the
/// test, and [`Cases::finish`] fails once, naming every case that did not hold (with where it
/// was checked). Dropped unfinished while the test panics for another reason, it prints the
/// mismatches found so far.
#[must_use = "call finish() to report the mismatches"]
pub struct Cases {
    what: String,
    checked: usize,
    failures: Vec<String>,
    finished: bool,
}

impl Cases {
    /// An empty table for `what` (the start of the failure message).
    pub fn new(what: &str) -> Cases {
        Cases {
            what: what.to_owned(),
            checked: 0,
            failures: Vec::new(),
            finished: false,
        }
    }

    /// Records case `name`: `result` must be a failure with `code` and a message mentioning
    /// `needle` (`""` for any message). Returns the message when it is.
    #[track_caller]
    pub fn check<T: Debug>(
        &mut self,
        name: impl Display,
        result: Result<T, Status>,
        code: Code,
        needle: &str,
    ) -> Option<String> {
        self.check_all(name, result, code, &[needle])
    }

    /// [`Cases::check`] with a message that must mention every one of `needles`.
    #[track_caller]
    pub fn check_all<T: Debug>(
        &mut self,
        name: impl Display,
        result: Result<T, Status>,
        code: Code,
        needles: &[&str],
    ) -> Option<String> {
        let outcome = mismatch(result, code, needles);
        self.record(name, outcome.as_ref().err().cloned());
        outcome.ok()
    }

    /// Records case `name`, which holds when `holds` is true; `detail` says what was found.
    #[track_caller]
    pub fn expect(&mut self, name: impl Display, holds: bool, detail: impl Display) {
        self.record(name, (!holds).then(|| detail.to_string()));
    }

    #[track_caller]
    fn record(&mut self, name: impl Display, failure: Option<String>) {
        self.checked += 1;
        if let Some(why) = failure {
            let at = Location::caller();
            self.failures
                .push(format!("{name} ({}:{}): {why}", at.file(), at.line()));
        }
    }

    fn report(&self) -> String {
        format!(
            "{}: {} of {} cases failed:\n  - {}",
            self.what,
            self.failures.len(),
            self.checked,
            self.failures.join("\n  - ")
        )
    }

    /// Fails, listing every mismatch, if there was any.
    #[track_caller]
    pub fn finish(mut self) {
        self.finished = true;
        assert!(self.checked > 0, "{}: no case was checked", self.what);
        assert!(self.failures.is_empty(), "{}", self.report());
    }
}

impl Drop for Cases {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if std::thread::panicking() {
            if !self.failures.is_empty() {
                eprintln!("before the panic, {}", self.report());
            }
        } else {
            panic!("{}: Cases dropped without finish()", self.what);
        }
    }
}

/// The services the server at `addr` lists through gRPC reflection (v1).
pub async fn reflected(addr: std::net::SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(crate::support::server::connect(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a list of services: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_report_every_mismatch_at_once() {
        let not_found = |message: &str| Err::<(), _>(Status::not_found(message));
        let panic = std::panic::catch_unwind(|| {
            let mut cases = Cases::new("a table");
            let message = cases.check("holds", not_found("no ghost"), Code::NotFound, "ghost");
            assert_eq!(message.as_deref(), Some("no ghost"));
            let internal = Err::<(), _>(Status::internal("ghost"));
            cases.check("another code", internal, Code::NotFound, "ghost");
            cases.check("no needle", not_found("nothing"), Code::NotFound, "ghost");
            cases.check_all(
                "one needle of two",
                not_found("a ghost"),
                Code::NotFound,
                &["a", "b"],
            );
            cases.check("succeeded", Ok::<_, Status>(7), Code::NotFound, "");
            cases.expect("a fact", false, "it was not so");
            cases.finish();
        })
        .expect_err("finish fails");
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.starts_with("a table: 5 of 6 cases failed"),
            "{message}"
        );
        for name in [
            "another code (",
            "no needle (",
            "one needle of two (",
            "succeeded (",
            "a fact (",
        ] {
            assert!(message.contains(name), "{name} is reported: {message}");
        }
        assert!(!message.contains("holds ("), "{message}");
    }
}
