//! The binary as a process: SIGTERM drains the requests in flight and exits cleanly, and the
//! demo world answers with the key it prints.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tonic::Code;

use super::*;
use crate::support::db::postgres_tests;
use crate::support::server::{BinaryServer, eventually, wait_serving};

postgres_tests!(
    sigterm_drains_requests_in_flight_and_exits_cleanly,
    the_demo_world_answers_with_the_printed_key,
);

async fn sigterm_drains_requests_in_flight_and_exits_cleanly(db: &TestDb) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    // Two database connections make the burst's store reads queue, so many are in flight.
    let mut server =
        BinaryServer::spawn(&db.url, &["--db-max-connections", "2"], Some(SERVICE_LOG)).await;
    wait_serving(server.addr).await;
    let api = Api::at(server.addr).await;
    acme(&api).await;
    let q = CheckAccessRequest {
        consistency: fully(),
        ..may("dave", "EDIT_ITEMS", "/hr/team/docs")
    };
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);

    // Connections made before the signal.
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(connect(server.addr).await);
    }
    let mut health = HealthClient::new(connect(server.addr).await);
    let statuses = Arc::new(Mutex::new(Vec::<String>::new()));
    let watching = {
        let statuses = statuses.clone();
        tokio::spawn(async move {
            loop {
                let seen = match health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                {
                    Ok(r) => format!("{:?}", r.into_inner().status()),
                    Err(s) => format!("error {:?}", s.code()),
                };
                {
                    let mut list = statuses.lock().unwrap();
                    if list.last() != Some(&seen) {
                        list.push(seen.clone());
                    }
                }
                if seen.starts_with("error") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    const CALLS: usize = 200;
    let done = Arc::new(AtomicUsize::new(0));
    // Every call carries its own x-request-id, which the server logs when it answers.
    let tagged = |q: CheckAccessRequest, id: String| {
        let mut r = boot(q, None);
        r.metadata_mut().insert("x-request-id", id.parse().unwrap());
        r
    };
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut client = PermissionServiceClient::new(channels[i % channels.len()].clone());
        let (request, done) = (tagged(q.clone(), format!("burst-{i}")), done.clone());
        calls.push(tokio::spawn(async move {
            let r = client.check_access(request).await;
            done.fetch_add(1, Ordering::SeqCst);
            (
                format!("burst-{i}"),
                r.map(Response::into_inner),
                Instant::now(),
            )
        }));
    }
    // Signal while the burst is in flight: some answered, most not yet.
    eventually(Duration::from_secs(10), || async {
        done.load(Ordering::SeqCst) >= 5
    })
    .await;
    let pid = server.child.id().expect("running");
    let signalled = Instant::now();
    let done_at_signal = done.load(Ordering::SeqCst);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // A second wave after the signal, on the draining connections and on new ones.
    const LATE: usize = 50;
    for i in 0..LATE {
        let ch = if i % 2 == 0 {
            channels[i % channels.len()].clone()
        } else {
            Channel::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .connect_lazy()
        };
        let mut client = PermissionServiceClient::new(ch);
        let request = tagged(q.clone(), format!("late-{i}"));
        calls.push(tokio::spawn(async move {
            let r = client.check_access(request).await;
            (
                format!("late-{i}"),
                r.map(Response::into_inner),
                Instant::now(),
            )
        }));
    }

    let mut answered = BTreeSet::new();
    let (mut answered_after_signal, mut refused) = (0, 0);
    let mut failed = Vec::new();
    for call in calls {
        let (id, r, at) = call.await.unwrap();
        match r {
            Ok(d) => {
                assert!(d.allowed, "{d:#?}");
                answered.insert(id);
                if at > signalled {
                    answered_after_signal += 1;
                }
            }
            // Refused before it was accepted: the connection closed, or the stream refused.
            Err(s) if s.code() == Code::Unavailable => refused += 1,
            Err(s) => failed.push((id, format!("{:?}: {}", s.code(), s.message()))),
        }
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    watching.abort();
    // Every line the binary wrote, up to its end of stderr.
    tokio::time::timeout(Duration::from_secs(10), &mut server.reader)
        .await
        .expect("stderr closes after exit")
        .unwrap();
    let stderr = server.stderr.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();
    // What the server answered, by request id.
    let served: BTreeSet<String> = stderr
        .iter()
        .filter(|l| l.contains("rpc=\"CheckAccess\"") && l.contains("code=\"OK\""))
        .filter_map(|l| {
            let rest = &l[l.find("request_id=")? + "request_id=".len()..];
            Some(rest[..rest.find(['}', ' '])?].to_owned())
        })
        .filter(|id| id.starts_with("burst-") || id.starts_with("late-"))
        .collect();
    eprintln!(
        "SIGTERM after {done_at_signal} of {CALLS} calls had answered, then {LATE} more: \
         {} OK ({answered_after_signal} of them after the signal), {refused} UNAVAILABLE, {} \
         failed otherwise {:?}; health seen: {statuses:?}; exit {exit:?}",
        answered.len(),
        failed.len(),
        failed.iter().map(|(_, s)| s).collect::<BTreeSet<_>>()
    );
    assert_eq!(answered.len() + refused + failed.len(), CALLS + LATE);
    // Every call the server answered reached its caller, and nothing it accepted was cut off:
    // the calls of the burst, all sent before the signal, were answered or refused outright.
    assert_eq!(
        served, answered,
        "answered by the server = answered to the caller"
    );
    for (id, status) in &failed {
        assert!(
            id.starts_with("late-"),
            "{id}, sent before the signal, was cut off: {status}"
        );
        assert!(!served.contains(id), "{id} was served, then lost: {status}");
    }
    assert!(
        answered_after_signal > 0,
        "the signal came while calls were in flight"
    );
    assert!(exit.success(), "exit status {exit:?}; stderr: {stderr:#?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("health NOT_SERVING") && l.contains("draining")),
        "the binary says it reports NOT_SERVING while draining: {stderr:#?}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("consentry stopped")),
        "{stderr:#?}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("abandoning")),
        "nothing was abandoned: {stderr:#?}"
    );
    // The health poller saw SERVING before; NOT_SERVING is only visible if a check slipped in
    // between the switch and the close of its connection.
    assert_eq!(statuses.first().map(String::as_str), Some("Serving"));
}

// ---------------------------------------------------------------------------------------------
// The demo world.

async fn the_demo_world_answers_with_the_printed_key(db: &TestDb) {
    let server = BinaryServer::start(&db.url, &["--demo", "--demo-allow-postgres"]).await;
    let key = server
        .stdout
        .first()
        .expect("the demo prints its key")
        .trim()
        .to_owned();
    assert!(!key.is_empty());
    let api = Api::at(server.addr).await;
    let q = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        user_id: "dave".into(),
        permission: "EDIT_ITEMS".into(),
        resource: "/hr/team/docs".into(),
        explain: true,
        ..Default::default()
    };
    let d = api.check_as(&key, None, q.clone()).await.unwrap();
    decided(&d, Reason::Allowed, None);
    // The demo's other stories: a re-approval and an external permission.
    let mirror = api
        .check_as(
            &key,
            None,
            CheckAccessRequest {
                app_id: "mirror".into(),
                permission: String::new(),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(mirror.reason(), Reason::ReapprovalRequired);
    let listed = api.list(&key, None, listing("dave", "", "")).await.unwrap();
    assert_eq!(listed.permissions.len(), 2);
    assert!(server.terminate().await.success());
}
