//! A load generator for consentry's mixed workload, driven by `scripts/workload`: concurrent
//! callers over a few HTTP/2 connections to one or more instances, asking for users of a
//! `scripts/bench-data` dataset drawn by Zipf popularity, with a share of writes that invalidate
//! the users they touch.
//!
//! The mix: CheckAccess 80 %, CheckAccessBatch of 10 checks 8 %, GetAppScopes 5 %,
//! ListExternalPermissions 6 %, and `--writes` (1 % by default) GrantUserRight or
//! RevokeUserRight of `READ` at `/workload` for a drawn user (granted, then revoked the next
//! time that user is written; one write at a time per user). Users are ranked by popularity
//! through a fixed permutation of the dataset's users (so popularity does not follow tenant or
//! rights count) and drawn Zipf(`--zipf`) over the ranks; resources are paths of the user's
//! tenant at depth 1-4, permissions the four levels.
//!
//! `--hot K` draws only from the first K ranks; with `--sweep` a run first asks, untimed,
//! GetAppScopes for every consented app and each hot user once per app of its tenant, so that a
//! following run with `--writes 0` meets only cache hits. `--cold` asks only CheckAccess, each
//! for a user never asked before by this instance (ranks in order from `--cold-start`).
//!
//! It prints a JSON report on stdout (calls and latency percentiles by RPC, checks/s, errors
//! by RPC and gRPC code) and a summary on stderr; any error fails the run (exit 1).
//!
//! Usage: `cargo run --release --example workload -- --manifest bench-data.json --key KEY
//! --addr 127.0.0.1:50051 [--addr …] [--callers 32] [--connections 4] [--seconds 20 | --count N]`

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use serde::Deserialize;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// The command line.
#[derive(Debug, Parser)]
#[command(about = "Mixed-RPC load generator for consentry over a bench-data dataset")]
struct Args {
    /// The JSON manifest `scripts/bench-data` wrote.
    #[arg(long)]
    manifest: String,
    /// The client key to call with: `query`, `assert_user` (ListExternalPermissions as seen by
    /// an app), and `admin` when writing; default: the manifest's.
    #[arg(long)]
    key: Option<String>,
    /// An instance's gRPC address; repeat to spread the connections over several.
    #[arg(long, required = true)]
    addr: Vec<String>,
    /// Concurrent callers (each one call at a time).
    #[arg(long, default_value_t = 32)]
    callers: usize,
    /// HTTP/2 connections, spread over the addresses; callers are spread over them.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long the timed part lasts.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Stop after this many calls instead (whichever comes first).
    #[arg(long)]
    count: Option<u64>,
    /// Share of calls that are writes.
    #[arg(long, default_value_t = 0.01)]
    writes: f64,
    /// Exponent of user popularity.
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Draw users only from the K most popular.
    #[arg(long)]
    hot: Option<u64>,
    /// Before the timed part, ask GetAppScopes for every consented app and, with `--hot`,
    /// ask for each hot user through every app of its tenant (untimed).
    #[arg(long)]
    sweep: bool,
    /// Only CheckAccess, each for a user not asked before in this run.
    #[arg(long)]
    cold: bool,
    /// The first popularity rank `--cold` asks for.
    #[arg(long, default_value_t = 0)]
    cold_start: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    client: ManifestClient,
    user_width: usize,
    population: Vec<TenantShape>,
}

#[derive(Debug, Deserialize)]
struct ManifestClient {
    key: String,
}

#[derive(Debug, Deserialize)]
struct TenantShape {
    tenant_id: String,
    users: u64,
    sites: u64,
    apps: Vec<String>,
}

// ---- randomness ----------------------------------------------------------------------------

/// xorshift64*: small, fast and seeded; one per caller.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        // splitmix64 of the seed and the stream, never zero.
        let mut z = seed
            .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Zipf over ranks 0..n: P(k) ∝ (k + 1)^-s, by binary search of the cumulative weights.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (0..n)
            .map(|k| {
                total += ((k + 1) as f64).powf(-s);
                total
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let u = rng.unit() * total;
        (self.cdf.partition_point(|&c| c < u) as u64).min(self.cdf.len() as u64 - 1)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The dataset's users, addressable by popularity rank.
struct Population {
    tenants: Vec<TenantShape>,
    /// The index of each tenant's first user.
    starts: Vec<u64>,
    total: u64,
    width: usize,
    /// rank → user index is `(rank * mul + add) mod total`, a bijection.
    mul: u64,
    add: u64,
}

/// One user of the dataset.
#[derive(Clone, Copy)]
struct User<'a> {
    index: u64,
    tenant: &'a TenantShape,
    number: u64,
}

impl Population {
    fn new(manifest: Manifest, seed: u64) -> anyhow::Result<Self> {
        let mut starts = Vec::with_capacity(manifest.population.len());
        let mut total = 0u64;
        for t in &manifest.population {
            if t.apps.is_empty() || t.users == 0 || t.sites == 0 {
                bail!(
                    "tenant {} has no users, sites or consented apps",
                    t.tenant_id
                );
            }
            starts.push(total);
            total += t.users;
        }
        if total == 0 {
            bail!("the manifest's population is empty (a manifest of an older bench-data?)");
        }
        let mut mul = (0x9E37_79B9_7F4A_7C15u64 ^ seed) % total;
        while mul == 0 || gcd(mul, total) != 1 {
            mul = (mul + 1) % total;
        }
        let add = Rng::new(seed, u64::MAX).below(total);
        Ok(Population {
            tenants: manifest.population,
            starts,
            total,
            width: manifest.user_width,
            mul,
            add,
        })
    }

    fn by_rank(&self, rank: u64) -> User<'_> {
        let index = ((u128::from(rank) * u128::from(self.mul) + u128::from(self.add))
            % u128::from(self.total)) as u64;
        let t = self.starts.partition_point(|&s| s <= index) - 1;
        User {
            index,
            tenant: &self.tenants[t],
            number: index - self.starts[t] + 1,
        }
    }

    fn user_id(&self, user: User<'_>) -> String {
        format!("user{:0width$}", user.number, width = self.width)
    }
}

const PERMISSIONS: [&str; 4] = ["READ", "WRITE", "MANAGE", "FULL_CONTROL"];

/// A resource of the tenant at depth 1-4, the first sites more often.
fn resource(rng: &mut Rng, tenant: &TenantShape) -> String {
    let u = rng.unit();
    let site = ((tenant.sites as f64) * u * u * u) as u64;
    let mut path = format!("/site{site}");
    let depth = 1 + rng.below(4);
    if depth >= 2 {
        path += &format!("/web{}", rng.below(4));
    }
    if depth >= 3 {
        path += &format!("/list{}", rng.below(4));
    }
    if depth >= 4 {
        path += &format!("/folder{}", rng.below(3));
    }
    path
}

fn permission(rng: &mut Rng) -> &'static str {
    let u = rng.unit();
    PERMISSIONS[usize::from(u >= 0.5) + usize::from(u >= 0.8) + usize::from(u >= 0.95)]
}

// ---- latency -------------------------------------------------------------------------------

/// Log-bucketed latencies in nanoseconds: exact below 64 ns, then 64 buckets per power of two
/// (within 1.6 %).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_ns: u128,
}

const SUB: u32 = 6;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB as usize + 1) << SUB],
            total: 0,
            sum_ns: 0,
        }
    }

    fn record(&mut self, ns: u64) {
        let v = ns.max(1);
        let e = 63 - v.leading_zeros();
        let index = if e < SUB {
            v as usize
        } else {
            (((e - SUB + 1) as usize) << SUB) + ((v >> (e - SUB)) as usize & ((1 << SUB) - 1))
        };
        self.counts[index] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
    }

    /// The middle of bucket `index`, in nanoseconds.
    fn value(index: usize) -> f64 {
        let group = index >> SUB;
        let sub = (index & ((1 << SUB) - 1)) as u64;
        if group == 0 {
            return sub as f64;
        }
        let e = group as u32 - 1 + SUB;
        let low = (1u64 << e) + (sub << (e - SUB));
        low as f64 + (1u64 << (e - SUB)) as f64 / 2.0
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::value(i) / 1000.0;
            }
        }
        0.0
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.total,
            "mean_us": if self.total == 0 { 0.0 } else { self.sum_ns as f64 / self.total as f64 / 1000.0 },
            "p50_us": self.quantile_us(0.50),
            "p99_us": self.quantile_us(0.99),
            "p999_us": self.quantile_us(0.999),
        })
    }
}

// ---- calls ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Check,
    Batch,
    Scopes,
    List,
    Write,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Check,
        Kind::Batch,
        Kind::Scopes,
        Kind::List,
        Kind::Write,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Check => "CheckAccess",
            Kind::Batch => "CheckAccessBatch",
            Kind::Scopes => "GetAppScopes",
            Kind::List => "ListExternalPermissions",
            Kind::Write => "GrantUserRight/RevokeUserRight",
        }
    }
}

/// Whether a user holds the `/workload` right this run gave, and whether a write to it is in
/// flight.
#[derive(Default)]
struct WriteState {
    granted: bool,
    busy: bool,
}

/// What every caller shares.
struct Shared {
    population: Population,
    zipf: Zipf,
    /// Cumulative shares of check, batch, scopes, list (writes are the rest).
    mix: [f64; 4],
    auth: MetadataValue<tonic::metadata::Ascii>,
    writes: Mutex<HashMap<u64, WriteState>>,
    next_rank: AtomicU64,
    issued: AtomicU64,
    limit: u64,
    cold: bool,
    end_rank: u64,
}

/// One caller's tallies.
struct Tally {
    latency: BTreeMap<Kind, Histogram>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: Kind::ALL.iter().map(|&k| (k, Histogram::new())).collect(),
            errors: BTreeMap::new(),
        }
    }
}

struct Caller {
    shared: &'static Shared,
    permission: PermissionServiceClient<Channel>,
    admin: AdminServiceClient<Channel>,
    rng: Rng,
}

impl Caller {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.shared.auth.clone());
        request
    }

    fn draw(&mut self) -> User<'static> {
        let rank = self.shared.zipf.sample(&mut self.rng);
        self.shared.population.by_rank(rank)
    }

    /// One of the tenant's consented apps.
    fn app(&mut self, tenant: &TenantShape) -> String {
        tenant.apps[self.rng.below(tenant.apps.len() as u64) as usize].clone()
    }

    fn check(&mut self, user: User<'_>) -> CheckAccessRequest {
        CheckAccessRequest {
            tenant_id: user.tenant.tenant_id.clone(),
            app_id: self.app(user.tenant),
            user_id: self.shared.population.user_id(user),
            permission: permission(&mut self.rng).to_owned(),
            resource: resource(&mut self.rng, user.tenant),
            ..Default::default()
        }
    }

    /// One call of `kind`; the error's gRPC code if it failed.
    async fn call(&mut self, kind: Kind) -> Result<(), tonic::Code> {
        match kind {
            Kind::Check => {
                let user = self.draw();
                let message = self.check(user);
                let request = self.request(message);
                self.permission.check_access(request).await.map(drop)
            }
            Kind::Batch => {
                let items = (0..10)
                    .map(|_| {
                        let user = self.draw();
                        self.check(user)
                    })
                    .collect();
                let request = self.request(CheckAccessBatchRequest {
                    items,
                    ..Default::default()
                });
                self.permission.check_access_batch(request).await.map(drop)
            }
            Kind::Scopes => {
                let user = self.draw();
                let app_id = self.app(user.tenant);
                let request = self.request(GetAppScopesRequest {
                    tenant_id: user.tenant.tenant_id.clone(),
                    app_id,
                    ..Default::default()
                });
                self.permission.get_app_scopes(request).await.map(drop)
            }
            Kind::List => {
                let user = self.draw();
                let app_id = self.app(user.tenant);
                let request = self.request(ListExternalPermissionsRequest {
                    tenant_id: user.tenant.tenant_id.clone(),
                    user_id: self.shared.population.user_id(user),
                    app_id,
                    ..Default::default()
                });
                self.permission
                    .list_external_permissions(request)
                    .await
                    .map(drop)
            }
            Kind::Write => return self.write().await,
        }
        .map_err(|status| status.code())
    }

    /// Grants `READ` at `/workload` to a drawn user, or revokes it if this run granted it;
    /// never two writes to one user at once.
    async fn write(&mut self) -> Result<(), tonic::Code> {
        let (user, grant) = loop {
            let user = self.draw();
            let mut writes = self
                .shared
                .writes
                .lock()
                .map_err(|_| tonic::Code::Internal)?;
            let state = writes.entry(user.index).or_default();
            if !state.busy {
                state.busy = true;
                break (user, !state.granted);
            }
        };
        let tenant_id = user.tenant.tenant_id.clone();
        let user_id = self.shared.population.user_id(user);
        let resource = "/workload".to_owned();
        let right = Right::Read.into();
        let result = if grant {
            let request = self.request(GrantUserRightRequest {
                tenant_id,
                user_id,
                resource,
                right,
            });
            self.admin.grant_user_right(request).await.map(drop)
        } else {
            let request = self.request(RevokeUserRightRequest {
                tenant_id,
                user_id,
                resource,
                right,
            });
            self.admin.revoke_user_right(request).await.map(drop)
        };
        let mut writes = self
            .shared
            .writes
            .lock()
            .map_err(|_| tonic::Code::Internal)?;
        let state = writes.entry(user.index).or_default();
        state.busy = false;
        if result.is_ok() {
            state.granted = grant;
        }
        result.map_err(|status| status.code())
    }

    fn pick(&mut self) -> Kind {
        let u = self.rng.unit();
        let mix = self.shared.mix;
        if u < mix[0] {
            Kind::Check
        } else if u < mix[1] {
            Kind::Batch
        } else if u < mix[2] {
            Kind::Scopes
        } else if u < mix[3] {
            Kind::List
        } else {
            Kind::Write
        }
    }

    /// A CheckAccess for the next rank not yet asked, or None when none is left.
    async fn cold_check(&mut self) -> Option<Result<(), tonic::Code>> {
        let rank = self.shared.next_rank.fetch_add(1, Ordering::Relaxed);
        if rank >= self.shared.end_rank {
            return None;
        }
        let user = self.shared.population.by_rank(rank);
        let message = self.check(user);
        let request = self.request(message);
        Some(
            self.permission
                .check_access(request)
                .await
                .map(drop)
                .map_err(|status| status.code()),
        )
    }

    async fn run(mut self, until: Instant) -> Tally {
        let mut tally = Tally::new();
        while Instant::now() < until
            && self.shared.issued.fetch_add(1, Ordering::Relaxed) < self.shared.limit
        {
            let kind = if self.shared.cold {
                Kind::Check
            } else {
                self.pick()
            };
            let started = Instant::now();
            let result = if self.shared.cold {
                match self.cold_check().await {
                    Some(result) => result,
                    None => break,
                }
            } else {
                self.call(kind).await
            };
            let ns = started.elapsed().as_nanos() as u64;
            match result {
                Ok(()) => {
                    if let Some(h) = tally.latency.get_mut(&kind) {
                        h.record(ns);
                    }
                }
                Err(code) => {
                    *tally
                        .errors
                        .entry(format!("{} {code:?}", kind.name()))
                        .or_default() += 1;
                }
            }
        }
        tally
    }
}

/// Asks GetAppScopes once for every consented app of every tenant, so that a timed run starts
/// with the apps' snapshots loaded.
async fn warm_apps(shared: &'static Shared, channels: &[Channel], n: usize) -> anyhow::Result<()> {
    let pairs: Arc<Vec<(&'static str, &'static str)>> = Arc::new(
        shared
            .population
            .tenants
            .iter()
            .flat_map(|t| t.apps.iter().map(|a| (t.tenant_id.as_str(), a.as_str())))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // As many at once as the timed run has callers, so the instances' pools open their
    // connections here.
    for i in 0..n {
        let mut client = PermissionServiceClient::new(channels[i % channels.len()].clone());
        let (pairs, next) = (pairs.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&(tenant, app)) = pairs.get(i) else {
                    return Ok::<(), tonic::Status>(());
                };
                let mut request = tonic::Request::new(GetAppScopesRequest {
                    tenant_id: tenant.to_owned(),
                    app_id: app.to_owned(),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("authorization", shared.auth.clone());
                client.get_app_scopes(request).await?;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result
            .context("a task panicked")?
            .context("warming the apps")?;
    }
    Ok(())
}

/// Asks once for each of the `hot` most popular users: CheckAccess through every app of the
/// tenant, and ListExternalPermissions.
async fn warm_users(shared: &'static Shared, callers: Vec<Caller>, hot: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut caller in callers {
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let rank = next.fetch_add(1, Ordering::Relaxed);
                if rank >= hot {
                    return Ok::<(), tonic::Status>(());
                }
                let user = shared.population.by_rank(rank);
                for app in &user.tenant.apps {
                    let mut message = caller.check(user);
                    message.app_id.clone_from(app);
                    let request = caller.request(message);
                    caller.permission.check_access(request).await?;
                }
                let request = caller.request(ListExternalPermissionsRequest {
                    tenant_id: user.tenant.tenant_id.clone(),
                    user_id: shared.population.user_id(user),
                    app_id: user.tenant.apps[0].clone(),
                    ..Default::default()
                });
                caller.permission.list_external_permissions(request).await?;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result
            .context("a task panicked")?
            .context("warming the hot users")?;
    }
    Ok(())
}

fn callers(shared: &'static Shared, channels: &[Channel], n: usize, seed: u64) -> Vec<Caller> {
    (0..n)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            Caller {
                shared,
                permission: PermissionServiceClient::new(channel.clone()),
                admin: AdminServiceClient::new(channel),
                rng: Rng::new(seed, i as u64),
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest))?;
    let manifest: Manifest = serde_json::from_str(&text).context("parsing the manifest")?;
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| manifest.client.key.clone());
    let population = Population::new(manifest, args.seed)?;
    let ranks = match args.hot {
        Some(hot) => hot.clamp(1, population.total),
        None => population.total,
    };
    let writes = if args.cold { 0.0 } else { args.writes };
    if !(0.0..=1.0).contains(&writes) {
        bail!("--writes must be between 0 and 1");
    }
    let weights = [80.0, 8.0, 5.0, 6.0];
    let sum: f64 = weights.iter().sum::<f64>() / (1.0 - writes);
    let mut mix = [0.0; 4];
    let mut total = 0.0;
    for (m, w) in mix.iter_mut().zip(weights) {
        total += w / sum;
        *m = total;
    }
    let end_rank = population.total.min(
        args.cold_start
            .saturating_add(args.count.unwrap_or(u64::MAX)),
    );
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        zipf: Zipf::new(ranks, args.zipf),
        population,
        mix,
        auth: format!("Bearer {key}")
            .parse()
            .context("the key as a header")?,
        writes: Mutex::new(HashMap::new()),
        next_rank: AtomicU64::new(args.cold_start),
        issued: AtomicU64::new(0),
        limit: args.count.unwrap_or(u64::MAX),
        cold: args.cold,
        end_rank,
    }));

    let mut channels = Vec::new();
    for i in 0..args.connections.max(1) {
        let addr = &args.addr[i % args.addr.len()];
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        channels.push(channel);
    }
    let callers_n = args.callers.max(1);

    let warm_started = Instant::now();
    if args.sweep {
        warm_apps(shared, &channels, callers_n).await?;
        if let (Some(hot), false) = (args.hot, args.cold) {
            let warming = callers(shared, &channels, callers_n, args.seed ^ 0x5EED);
            warm_users(shared, warming, hot).await?;
        }
    }
    let warm_seconds = warm_started.elapsed().as_secs_f64();

    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = callers(shared, &channels, callers_n, args.seed)
        .into_iter()
        .map(|caller| tokio::spawn(caller.run(until)))
        .collect();
    let mut latency: BTreeMap<Kind, Histogram> =
        Kind::ALL.iter().map(|&k| (k, Histogram::new())).collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let tally = task.await.context("a caller panicked")?;
        for (kind, h) in &tally.latency {
            if let Some(all) = latency.get_mut(kind) {
                all.merge(h);
            }
        }
        for (what, n) in tally.errors {
            *errors.entry(what).or_default() += n;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    let mut all = Histogram::new();
    let mut kinds = serde_json::Map::new();
    for (kind, h) in &latency {
        all.merge(h);
        if h.total > 0 {
            kinds.insert(kind.name().to_owned(), h.summary());
        }
    }
    let checks = latency[&Kind::Check].total + 10 * latency[&Kind::Batch].total;
    let failed: u64 = errors.values().sum();
    let report = serde_json::json!({
        "mode": if args.cold { "cold" } else if args.hot.is_some() { "hot" } else { "mixed" },
        "addrs": args.addr,
        "callers": callers_n,
        "connections": channels.len(),
        "users": shared.population.total,
        "ranks": ranks,
        "zipf": args.zipf,
        "writes_share": writes,
        "warm_seconds": warm_seconds,
        "seconds": seconds,
        "calls": all.total,
        "calls_per_s": all.total as f64 / seconds,
        "checks": checks,
        "checks_per_s": checks as f64 / seconds,
        "writes": latency[&Kind::Write].total,
        "rpcs": kinds,
        "all": all.summary(),
        "errors": errors,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "workload: {} calls in {seconds:.1} s ({:.0}/s), {checks} checks ({:.0}/s), p50/p99/p99.9 {:.0}/{:.0}/{:.0} µs, {failed} errors",
        all.total,
        all.total as f64 / seconds,
        checks as f64 / seconds,
        all.quantile_us(0.5),
        all.quantile_us(0.99),
        all.quantile_us(0.999),
    );
    if failed > 0 {
        for (what, n) in &errors {
            eprintln!("  error: {what}: {n}");
        }
        std::process::exit(1);
    }
    Ok(())
}
