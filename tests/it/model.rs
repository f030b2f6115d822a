//! A model-based concurrency test: two instances over one Postgres database, parallel admin
//! writers and readers running random operations from a seed, then every audit event and the
//! final state compared with a simple model applied in revision order.
//!
//! The seed is printed; set `CONSENTRY_MODEL_SEED` to replay one. The interleaving varies from
//! run to run; what is asserted does not depend on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consentry::proto::consistency::Requirement;
use consentry::proto::*;
use tonic::{Code, Status};

use crate::support::calls::{Who, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, put_tenant, put_user, register};

postgres_tests!(random_writes_on_two_instances_match_the_model);

/// The variable that replays a seed.
const SEED_ENV: &str = "CONSENTRY_MODEL_SEED";
/// Writers (split over both instances) and operations each.
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 50;
/// Readers (one per instance).
const READERS: usize = 2;
/// How long the writers may take in all.
const DEADLINE: Duration = Duration::from_secs(60);

const TENANTS: [&str; 2] = ["m1", "m2"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];
const APPS: [&str; 2] = ["ma", "mb"];
const RESOURCES: [&str; 2] = ["/sites/a", "/sites/b"];
const SCOPES: [&str; 3] = ["documents:read", "documents:write", "mail:send"];
const RIGHTS: [Right; 4] = [Right::Read, Right::Write, Right::Manage, Right::FullControl];
/// Every tenant's administrator, the acting user of every write (never changed by the writers).
const ADMIN: &str = "admin";

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A non-empty subset of `SCOPES`, in order.
    fn scopes(&mut self) -> Vec<&'static str> {
        let bits = 1 + self.below((1 << SCOPES.len()) - 1);
        (0..SCOPES.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| SCOPES[i])
            .collect()
    }
}

/// One random admin write.
#[derive(Debug, Clone)]
enum Op {
    PutTenant(&'static str, bool),
    PutUser(&'static str, &'static str, bool),
    DeleteUser(&'static str, &'static str),
    GrantRight(&'static str, &'static str, &'static str, Right),
    RevokeRight(&'static str, &'static str, &'static str, Right),
    UpdateManifest(&'static str, Vec<&'static str>),
    /// Approval of the manifest revision the writer last saw.
    Approve(&'static str, &'static str, i64),
    RevokeConsent(&'static str, &'static str),
    PutWhitelist(&'static str, &'static str, Vec<&'static str>),
    DeleteWhitelist(&'static str, &'static str),
}

impl Op {
    /// A random operation; approvals name `seen`, the writer's last known manifest revisions.
    fn draw(rng: &mut Rng, seen: &BTreeMap<&'static str, i64>) -> Op {
        let t = rng.pick(&TENANTS);
        let u = rng.pick(&USERS);
        let app = rng.pick(&APPS);
        match rng.below(10) {
            0 => Op::PutTenant(t, rng.below(2) == 0),
            1 => Op::PutUser(t, u, rng.below(2) == 0),
            2 => Op::DeleteUser(t, u),
            3 => Op::GrantRight(t, u, rng.pick(&RESOURCES), rng.pick(&RIGHTS)),
            4 => Op::RevokeRight(t, u, rng.pick(&RESOURCES), rng.pick(&RIGHTS)),
            5 => Op::UpdateManifest(app, rng.scopes()),
            6 => Op::Approve(t, app, seen[app]),
            7 => Op::RevokeConsent(t, app),
            8 => Op::PutWhitelist(t, app, rng.scopes()),
            _ => Op::DeleteWhitelist(t, app),
        }
    }

    /// The audit action and target of the event a successful `self` leaves.
    fn audited(&self) -> (&'static str, &'static str, String) {
        match self {
            Op::PutTenant(t, _) => ("PutTenant", t, format!("tenant:{t}")),
            Op::PutUser(t, u, _) => ("PutUser", t, format!("user:{u}")),
            Op::DeleteUser(t, u) => ("DeleteUser", t, format!("user:{u}")),
            Op::GrantRight(t, u, ..) => ("GrantUserRight", t, format!("user:{u}")),
            Op::RevokeRight(t, u, ..) => ("RevokeUserRight", t, format!("user:{u}")),
            Op::UpdateManifest(a, _) => ("UpdateAppManifest", "", format!("app:{a}")),
            Op::Approve(t, a, _) => ("ApproveConsent", t, format!("app:{a}")),
            Op::RevokeConsent(t, a) => ("RevokeConsent", t, format!("app:{a}")),
            Op::PutWhitelist(t, a, _) => ("PutWhitelistEntry", t, format!("app:{a}")),
            Op::DeleteWhitelist(t, a) => ("DeleteWhitelistEntry", t, format!("app:{a}")),
        }
    }

    /// The refusals `self` may meet, given the universe (anything else is a defect).
    fn may_refuse(&self, code: Code) -> bool {
        match self {
            Op::Approve(..) => code == Code::Aborted,
            Op::DeleteUser(..)
            | Op::GrantRight(..)
            | Op::RevokeRight(..)
            | Op::RevokeConsent(..)
            | Op::DeleteWhitelist(..) => code == Code::NotFound,
            Op::PutTenant(..) | Op::PutUser(..) | Op::UpdateManifest(..) | Op::PutWhitelist(..) => {
                false
            }
        }
    }

    /// Runs `self` on `a` as the tenant administrator: the revision written at, and the
    /// manifest revision for a manifest update.
    async fn run(&self, a: &mut Admin) -> Result<(String, Option<i64>), Status> {
        let who = Who::boot().user(ADMIN);
        macro_rules! w {
            ($call:expr) => {
                $call.await.map(|r| (r.into_inner().written_at, None))
            };
        }
        match self.clone() {
            Op::PutTenant(t, on) => w!(a.put_tenant(who.r(tenant_req(t, "production", on)))),
            Op::PutUser(t, u, delegate) => {
                let roles: &[Role] = if delegate { &[Role::Delegate] } else { &[] };
                w!(a.put_user(who.r(user_req(t, u, roles))))
            }
            Op::DeleteUser(t, u) => w!(a.delete_user(who.r(DeleteUserRequest {
                tenant_id: t.into(),
                user_id: u.into(),
            }))),
            Op::GrantRight(t, u, res, right) => {
                w!(a.grant_user_right(who.r(right_req(t, u, res, right))))
            }
            Op::RevokeRight(t, u, res, right) => {
                w!(a.revoke_user_right(who.r(revoke_right_req(t, u, res, right))))
            }
            Op::UpdateManifest(app, scopes) => a
                .update_app_manifest(who.r(UpdateAppManifestRequest {
                    app_id: app.into(),
                    manifest: Some(manifest(&scopes, &[])),
                }))
                .await
                .map(|r| {
                    let r = r.into_inner();
                    (r.written_at, Some(r.manifest_revision))
                }),
            Op::Approve(t, app, seen) => {
                w!(a.approve_consent(who.r(approve_req(t, app, seen, vec![]))))
            }
            Op::RevokeConsent(t, app) => w!(a.revoke_consent(who.r(RevokeConsentRequest {
                tenant_id: t.into(),
                app_id: app.into(),
            }))),
            Op::PutWhitelist(t, app, scopes) => {
                w!(a.put_whitelist_entry(who.r(whitelist_req(t, app, &scopes))))
            }
            Op::DeleteWhitelist(t, app) => {
                w!(a.delete_whitelist_entry(who.r(DeleteWhitelistEntryRequest {
                    tenant_id: t.into(),
                    app_id: app.into(),
                })))
            }
        }
    }
}

/// What a write answered: its revision (and manifest revision), or a refusal code.
#[derive(Debug)]
struct Outcome {
    op: Op,
    result: Result<(u64, Option<i64>), (Code, String)>,
}

/// The state the writes build, as the listings and GetAppScopes report it.
#[derive(Debug, Default, PartialEq)]
struct Model {
    whitelisting: BTreeMap<String, bool>,
    /// (tenant, user) → roles.
    users: BTreeMap<(String, String), Vec<i32>>,
    rights: BTreeMap<(String, String, String), i32>,
    /// app → (manifest revision, scopes).
    manifests: BTreeMap<String, (i64, Vec<String>)>,
    /// (tenant, app) → (approved manifest revision, revoked).
    consents: BTreeMap<(String, String), (i64, bool)>,
    whitelist: BTreeMap<(String, String), Vec<String>>,
}

fn k2(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

fn owned(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

impl Model {
    /// Applies a successful write, checking that it was allowed in the state it met.
    fn apply(&mut self, op: &Op, manifest_revision: Option<i64>) -> Result<(), String> {
        match op {
            Op::PutTenant(t, on) => {
                self.whitelisting.insert((*t).to_owned(), *on);
            }
            Op::PutUser(t, u, d) => {
                let roles = if *d {
                    vec![i32::from(Role::Delegate)]
                } else {
                    vec![]
                };
                self.users.insert(k2(t, u), roles);
            }
            Op::DeleteUser(t, u) => {
                self.users
                    .remove(&k2(t, u))
                    .ok_or("deleted a user that did not exist")?;
                self.rights
                    .retain(|(rt, ru, _), _| (rt, ru) != (&(*t).to_owned(), &(*u).to_owned()));
            }
            Op::GrantRight(t, u, res, right) => {
                if !self.users.contains_key(&k2(t, u)) {
                    return Err("granted a right to a user that did not exist".into());
                }
                self.rights.insert(
                    (t.to_string(), u.to_string(), res.to_string()),
                    i32::from(*right),
                );
            }
            Op::RevokeRight(t, u, res, right) => {
                let key = (t.to_string(), u.to_string(), res.to_string());
                if self.rights.get(&key) != Some(&i32::from(*right)) {
                    return Err(format!(
                        "revoked a right not held: {:?}",
                        self.rights.get(&key)
                    ));
                }
                self.rights.remove(&key);
            }
            Op::UpdateManifest(app, scopes) => {
                let m = self.manifests.get_mut(*app).ok_or("unknown app")?;
                if m.0 + 1 != manifest_revision.unwrap_or_default() {
                    return Err(format!(
                        "manifest revision {manifest_revision:?} after {}",
                        m.0
                    ));
                }
                *m = (m.0 + 1, owned(scopes));
            }
            Op::Approve(t, app, seen) => {
                let current = self.manifests[*app].0;
                if *seen != current {
                    return Err(format!(
                        "approved revision {seen} while the manifest was at {current}"
                    ));
                }
                self.consents.insert(k2(t, app), (current, false));
            }
            Op::RevokeConsent(t, app) => match self.consents.get_mut(&k2(t, app)) {
                Some(c) if !c.1 => c.1 = true,
                other => return Err(format!("revoked a consent that was {other:?}")),
            },
            Op::PutWhitelist(t, app, scopes) => {
                self.whitelist.insert(k2(t, app), owned(scopes));
            }
            Op::DeleteWhitelist(t, app) => {
                self.whitelist
                    .remove(&k2(t, app))
                    .ok_or("deleted a whitelist entry that did not exist")?;
            }
        }
        Ok(())
    }
}

/// The latest revision token a writer was answered, for the readers.
type Latest = Arc<Mutex<(u64, String)>>;

fn at_least(token: &str) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(token.to_owned())),
    })
}

fn fully() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::FullyConsistent(true)),
    })
}

/// One writer: `OPS_PER_WRITER` random operations on `a`, every outcome recorded.
async fn writer(
    mut a: Admin,
    mut rng: Rng,
    mut seen: BTreeMap<&'static str, i64>,
    latest: Latest,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for _ in 0..OPS_PER_WRITER {
        let op = Op::draw(&mut rng, &seen);
        let result = match op.run(&mut a).await {
            Ok((token, manifest_revision)) => {
                let r = rev(&token);
                if let (Op::UpdateManifest(app, _), Some(m)) = (&op, manifest_revision) {
                    seen.insert(app, m);
                }
                let mut l = latest.lock().unwrap();
                if r > l.0 {
                    *l = (r, token);
                }
                Ok((r, manifest_revision))
            }
            Err(s) => Err((s.code(), s.message().to_owned())),
        };
        out.push(Outcome { op, result });
    }
    out
}

/// One reader: GetAppScopes at least as fresh as the latest write seen, until told to stop;
/// every answer must be at least that fresh. Returns how many reads it made.
async fn reader(
    server: usize,
    mut p: PermissionServiceClient,
    latest: Latest,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut rng = Rng(server as u64);
    let mut reads = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (floor, token) = latest.lock().unwrap().clone();
        let request = GetAppScopesRequest {
            tenant_id: rng.pick(&TENANTS).into(),
            app_id: rng.pick(&APPS).into(),
            consistency: if floor == 0 {
                fully()
            } else {
                at_least(&token)
            },
        };
        let reply = ok(p.get_app_scopes(Who::boot().r(request)).await);
        assert!(
            rev(&reply.checked_at) >= floor,
            "reader {server}: checked_at below {floor}"
        );
        reads += 1;
    }
    reads
}

type PermissionServiceClient =
    consentry::proto::permission_service_client::PermissionServiceClient<tonic::transport::Channel>;

/// Every audit event, paging to the end.
async fn all_events(a: &mut Admin) -> Vec<AuditEvent> {
    let (mut events, mut page_token) = (Vec::new(), String::new());
    loop {
        let reply = ok(a
            .list_audit_events(Who::boot().r(ListAuditEventsRequest {
                page_size: 7,
                page_token,
                ..Default::default()
            }))
            .await);
        events.extend(reply.events);
        if reply.next_page_token.is_empty() {
            return events;
        }
        page_token = reply.next_page_token;
    }
}

async fn random_writes_on_two_instances_match_the_model(db: &TestDb) {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| s.parse::<u64>().expect("CONSENTRY_MODEL_SEED is a number"))
        .unwrap_or_else(|| now_secs() as u64);
    eprintln!("model test seed {seed} (replay with {SEED_ENV}={seed})");

    let servers = [TestServer::start(db).await, TestServer::start(db).await];
    let mut a = servers[0].admin().await;
    // The world every run starts from: tenants with their administrator, and the apps.
    let mut model = Model::default();
    let mut seen = BTreeMap::new();
    for t in TENANTS {
        put_tenant(&mut a, t).await;
        put_user(&mut a, &Who::boot(), t, ADMIN, &[Role::GeneralAdmin]).await;
        model.whitelisting.insert(t.into(), false);
        model
            .users
            .insert(k2(t, ADMIN), vec![i32::from(Role::GeneralAdmin)]);
    }
    for app in APPS {
        seen.insert(
            app,
            register(&mut a, app, AppKind::Standard, manifest(&SCOPES[..1], &[])).await,
        );
        model.manifests.insert(app.into(), (1, owned(&SCOPES[..1])));
    }
    let setup_events = all_events(&mut a).await.len();

    let latest: Latest = Arc::new(Mutex::new((0, String::new())));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for (i, s) in servers.iter().enumerate().take(READERS) {
        readers.push(tokio::spawn(reader(
            i,
            s.permission().await,
            latest.clone(),
            stop.clone(),
        )));
    }
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let a = servers[i % 2].admin().await;
        let rng = Rng(seed.wrapping_add(i as u64 * 7919));
        writers.push(tokio::spawn(writer(a, rng, seen.clone(), latest.clone())));
    }
    let outcomes: Vec<Outcome> = tokio::time::timeout(DEADLINE, async {
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.expect("writer task"));
        }
        all
    })
    .await
    .unwrap_or_else(|_| {
        panic!("deadlock? the writers did not finish within {DEADLINE:?} (seed {seed})")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(
            r.await.expect("reader task") > 0,
            "every reader read (seed {seed})"
        );
    }
    check(
        seed,
        &servers,
        model,
        &outcomes,
        setup_events,
        all_events(&mut a).await,
    )
    .await;
    for s in servers {
        s.stop().await;
    }
}

/// The audit log against the outcomes, the model applied in revision order, and the final state
/// on both instances against the model.
async fn check(
    seed: u64,
    servers: &[TestServer; 2],
    mut model: Model,
    outcomes: &[Outcome],
    setup_events: usize,
    events: Vec<AuditEvent>,
) {
    let ctx = format!("(seed {seed}; replay with {SEED_ENV}={seed})");
    // Revisions strictly increasing and gap-free, from 1.
    let revisions: Vec<u64> = events.iter().map(|e| rev(&e.revision)).collect();
    let expected: Vec<u64> = (1..=revisions.len() as u64).collect();
    assert_eq!(
        revisions, expected,
        "audit revisions are 1..n in order {ctx}"
    );
    let by_revision: BTreeMap<u64, &AuditEvent> = revisions.iter().copied().zip(&events).collect();

    // Each effective write has exactly one event at its revision; a refused one none; a manifest
    // update that changes nothing answers the revision it read, with no event of its own.
    let mut effective: BTreeMap<u64, &Outcome> = BTreeMap::new();
    let mut unchanged: BTreeMap<u64, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        match &o.result {
            Err((code, message)) => assert!(
                o.op.may_refuse(*code),
                "{:?} refused with {code:?}: {message} {ctx}",
                o.op
            ),
            Ok((r, _)) => {
                let (action, tenant, target) = o.op.audited();
                let e = by_revision
                    .get(r)
                    .unwrap_or_else(|| panic!("no event at {r} for {:?} {ctx}", o.op));
                if (e.action.as_str(), e.target.as_str()) == (action, target.as_str())
                    && !effective.contains_key(r)
                {
                    assert_eq!(e.tenant_id, tenant, "tenant of the event at {r} {ctx}");
                    effective.insert(*r, o);
                } else if matches!(o.op, Op::UpdateManifest(..)) {
                    unchanged.entry(*r).or_default().push(o);
                } else {
                    panic!(
                        "{:?} answered revision {r}, whose event is {} {} {ctx}",
                        o.op, e.action, e.target
                    );
                }
            }
        }
    }
    assert_eq!(
        events.len(),
        setup_events + effective.len(),
        "one event per effective write and none for a refused one {ctx}"
    );

    // The model, in revision order.
    let mut last = 0;
    for (r, o) in &effective {
        model
            .apply(&o.op, o.result.as_ref().ok().and_then(|x| x.1))
            .unwrap_or_else(|e| panic!("{:?} at revision {r}: {e} {ctx}", o.op));
        for u in unchanged.get(r).into_iter().flatten() {
            let Op::UpdateManifest(app, scopes) = &u.op else {
                unreachable!()
            };
            assert_eq!(
                model.manifests[*app].1,
                owned(scopes),
                "an unchanged manifest at {r} {ctx}"
            );
        }
        last = *r;
    }
    // Stale approvals: ABORTED, and they named a revision older than the final one.
    let mut aborted = 0;
    for o in outcomes {
        if let (Op::Approve(_, app, seen_rev), Err((Code::Aborted, _))) = (&o.op, &o.result) {
            assert!(
                *seen_rev < model.manifests[*app].0,
                "{:?} aborted though current {ctx}",
                o.op
            );
            aborted += 1;
        }
    }
    eprintln!(
        "model test: {} writes, {} effective, {} aborted approvals, last revision {last}",
        outcomes.len(),
        effective.len(),
        aborted
    );
    let token = events
        .last()
        .map(|e| e.revision.clone())
        .unwrap_or_default();
    for (i, s) in servers.iter().enumerate() {
        let actual = observed(s, &[fully(), at_least(&token)]).await;
        assert_eq!(actual, model, "instance {i} against the model {ctx}");
        gates(s, &model, &[fully(), at_least(&token)], &ctx).await;
    }
}

/// The state as instance `s` lists it, and as GetAppScopes answers it under each consistency
/// (which must all agree).
async fn observed(s: &TestServer, consistencies: &[Option<Consistency>]) -> Model {
    let (mut a, mut p) = (s.admin().await, s.permission().await);
    let boot = Who::boot();
    let mut m = Model::default();
    for app in ok(a
        .list_apps(boot.r(ListAppsRequest {
            page_size: 500,
            ..Default::default()
        }))
        .await)
    .apps
    {
        if APPS.contains(&app.app_id.as_str()) {
            let scopes = app.manifest.map(|m| m.scopes).unwrap_or_default();
            m.manifests
                .insert(app.app_id, (app.manifest_revision, scopes));
        }
    }
    for t in TENANTS {
        let users = ok(a
            .list_users(boot.r(ListUsersRequest {
                tenant_id: t.into(),
                page_size: 500,
                ..Default::default()
            }))
            .await)
        .users;
        for u in users {
            let rights = ok(a
                .list_user_rights(boot.r(ListUserRightsRequest {
                    tenant_id: t.into(),
                    user_id: u.user_id.clone(),
                    page_size: 500,
                    ..Default::default()
                }))
                .await)
            .rights;
            for r in rights {
                m.rights
                    .insert((t.into(), u.user_id.clone(), r.resource), r.right);
            }
            m.users.insert(k2(t, &u.user_id), u.roles);
        }
        let consents = ok(a
            .list_consents(boot.r(ListConsentsRequest {
                tenant_id: t.into(),
                page_size: 500,
                ..Default::default()
            }))
            .await)
        .consents;
        for c in consents {
            m.consents.insert(
                k2(t, &c.app_id),
                (c.approved_manifest_revision, c.revoked_at.is_some()),
            );
        }
        let entries = ok(a
            .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
                tenant_id: t.into(),
                page_size: 500,
                ..Default::default()
            }))
            .await)
        .entries;
        for e in entries {
            m.whitelist.insert(k2(t, &e.app_id), e.allowed_scopes);
        }
        for app in APPS {
            for consistency in consistencies {
                let g = ok(p
                    .get_app_scopes(boot.r(GetAppScopesRequest {
                        tenant_id: t.into(),
                        app_id: app.into(),
                        consistency: consistency.clone(),
                    }))
                    .await);
                let what = format!("GetAppScopes {t} {app} {consistency:?}");
                m.whitelisting.insert(t.into(), g.whitelisting_enabled);
                assert_eq!(
                    g.whitelisted,
                    m.whitelist.contains_key(&k2(t, app)),
                    "{what}: whitelisted"
                );
                let info = g.consent.unwrap_or_default();
                let status =
                    ConsentStatus::try_from(info.status).unwrap_or(ConsentStatus::Unspecified);
                match m.consents.get(&k2(t, app)) {
                    None => assert_eq!(status, ConsentStatus::NotConsented, "{what}"),
                    Some((_, true)) => assert_eq!(status, ConsentStatus::Revoked, "{what}"),
                    Some((approved, false)) => {
                        assert_eq!(info.approved_manifest_revision, *approved, "{what}");
                        assert_eq!(info.current_manifest_revision, m.manifests[app].0, "{what}");
                        let allowed: &[ConsentStatus] = if *approved == m.manifests[app].0 {
                            &[ConsentStatus::Approved]
                        } else {
                            &[ConsentStatus::Approved, ConsentStatus::ReapprovalRequired]
                        };
                        assert!(allowed.contains(&status), "{what}: {status:?}");
                    }
                }
            }
        }
    }
    m
}

/// CheckAccess on instance `s` for each tenant's administrator and each app: the whitelist and
/// consent gates decide as the model says (the later steps are not modelled, only that the
/// gates were passed).
async fn gates(s: &TestServer, model: &Model, consistencies: &[Option<Consistency>], ctx: &str) {
    let mut p = s.permission().await;
    let gate = [
        Reason::UnknownTenant,
        Reason::UnknownApp,
        Reason::AppNotWhitelisted,
        Reason::NoConsent,
        Reason::ConsentRevoked,
    ];
    for t in TENANTS {
        for app in APPS {
            let key = k2(t, app);
            let expected = if model.whitelisting[t] && !model.whitelist.contains_key(&key) {
                Some(Reason::AppNotWhitelisted)
            } else {
                match model.consents.get(&key) {
                    None => Some(Reason::NoConsent),
                    Some((_, true)) => Some(Reason::ConsentRevoked),
                    Some(_) => None,
                }
            };
            for consistency in consistencies {
                let request = CheckAccessRequest {
                    tenant_id: t.into(),
                    app_id: app.into(),
                    user_id: ADMIN.into(),
                    scope: SCOPES[0].into(),
                    permission: "READ".into(),
                    resource: RESOURCES[0].into(),
                    consistency: consistency.clone(),
                    ..Default::default()
                };
                let reply = ok(p.check_access(Who::boot().r(request)).await);
                let reason = Reason::try_from(reply.reason).unwrap_or(Reason::Unspecified);
                let what = format!("CheckAccess {t} {app} {consistency:?}: {reason:?} {ctx}");
                match expected {
                    Some(r) => assert_eq!(reason, r, "{what}"),
                    None => assert!(!gate.contains(&reason), "{what}: past the gates"),
                }
                if reason != Reason::Allowed {
                    assert!(!reply.allowed, "{what}: denied");
                }
            }
        }
    }
}
