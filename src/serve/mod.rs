//! `sizeguard serve`: the registry webhook validator. Receivers turn
//! registry notifications into queued work; workers judge each pushed
//! image through the same app layer as `check`.
//!
//! - [`events`]: each sender's notifications (Distribution, Harbor,
//!   GitHub) reduced to one shape, and webhook authentication.
//! - [`store`]: the durable queue and the verdict records, in an embedded
//!   SQLite file or a PostgreSQL database shared by replicas.
//! - [`http`]: receivers, the verdict API, health and metrics (the last
//!   two behind a read token, or on an admin listener of their own).
//! - [`listener`]: the inbound limits (timeouts, caps) and TLS, in front
//!   of every listener.
//! - [`worker`]: claim, judge, record.
//! - [`policy`]: which rules and baseline a repository gets.
//! - [`sources`]: where workers read images from, per configured registry.
//! - [`metrics`]: the Prometheus metrics behind `/metrics`.
//! - [`outbound`]: verdicts out to a GitHub commit status and a chat webhook.
//! - [`admission`]: the Kubernetes admission webhook, judging a pod's
//!   images against the nodes it may land on at deploy time.
//!
//! Built only with the `server` cargo feature (on by default).

pub mod admission;
pub mod dashboard;
pub mod events;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod sources;
pub mod store;
pub mod worker;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::app::Services;
use crate::error::Error;
use crate::serve::http::{AppState, ReadApi, Receivers};
use crate::serve::listener::{Limits, TlsFiles};
use crate::serve::metrics::Metrics;
use crate::serve::outbound::{Outbound, Publisher};
use crate::serve::policy::Policies;
use crate::serve::store::Store;
use crate::serve::store::postgres::PostgresStore;
use crate::serve::store::sqlite::SqliteStore;
use crate::serve::worker::Workers;

/// Where the queue and the verdicts live.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// The embedded SQLite file in this directory.
    DataDir(PathBuf),
    /// A PostgreSQL database shared by several replicas.
    Database(String),
}

/// Everything `serve` runs with, resolved from flags and the file.
pub struct ServeOptions {
    pub listen: String,
    pub store: StoreChoice,
    pub receivers: Receivers,
    pub allowed: HashSet<String>,
    pub limits: Limits,
    pub tls: Option<TlsFiles>,
    pub workers: usize,
    pub max_queue: u64,
    pub lease: Duration,
    pub timeout: Duration,
    /// How long in-flight judgements may take to finish after SIGTERM;
    /// those still running then stay leased and are judged after restart.
    pub grace: Duration,
    pub services: Services,
    pub policies: Policies,
    pub outbound: Outbound,
    /// The bearer token the verdict API and `/metrics` require.
    pub api_token: Option<Vec<u8>>,
    /// A listener of its own for the verdict API and `/metrics`.
    pub admin_listen: Option<String>,
    /// Verdicts judged longer ago than this are deleted, and so are the
    /// event ids received longer ago.
    pub keep_verdicts: Duration,
    /// The admission webhook, when enabled.
    pub admission: Option<admission::AdmissionOptions>,
}

/// How often the kept queue depth is set again from the store's count:
/// other replicas of a shared database enqueue and judge too.
const DEPTH_RECOUNT: Duration = Duration::from_secs(15);

/// How often retention runs (and once at start); a shorter keep time runs
/// it that often instead.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The shutdown signal, observable by every task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown began.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

async fn open_store(choice: &StoreChoice) -> Result<Arc<dyn Store>, Error> {
    match choice {
        StoreChoice::DataDir(dir) => Ok(Arc::new(SqliteStore::open(dir).await?)),
        StoreChoice::Database(url) => Ok(Arc::new(PostgresStore::open(url).await?)),
    }
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(opts: ServeOptions) -> Result<(), Error> {
    let store = open_store(&opts.store).await?;
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| Error::usage(format!("--listen {}", opts.listen)).with_source(e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io("listening socket", e))?;
    let admin = match &opts.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::usage(format!("--admin-listen {addr}")).with_source(e))?,
        ),
        None => None,
    };
    let read_api = match (&admin, &opts.api_token) {
        (Some(_), _) => ReadApi::Admin,
        (None, Some(_)) => ReadApi::Main,
        (None, None) => ReadApi::Off,
    };
    let metrics = Arc::new(Metrics::new());
    metrics.set_depth(store.depth().await?);
    let metrics_for_listener = metrics.clone();
    let wake = Arc::new(Notify::new());
    let policies = Arc::new(opts.policies);
    let admission = opts.admission.map(|a| {
        Arc::new(admission::Admission {
            mode: a.mode,
            unmeasured: a.unmeasured,
            exempt: a.exempt,
            token: a.token,
            client_certificates: a.client_ca.is_some(),
            pools: a.pools,
            default_node: admission::judge::default_node(&policies),
            services: opts.services.clone(),
            policies: policies.clone(),
            allowed: opts.allowed.clone(),
            store: store.clone(),
            wake: wake.clone(),
            metrics: metrics.clone(),
            max_queue: opts.max_queue,
            memo: admission::Memo::default(),
        })
    });
    let state = Arc::new(AppState {
        store: store.clone(),
        receivers: opts.receivers,
        max_queue: opts.max_queue,
        retry_after: 5,
        metrics: metrics.clone(),
        wake: wake.clone(),
        ready: AtomicBool::new(true),
        api_token: opts.api_token,
        read_api,
        admission,
        sessions: dashboard::Sessions::new(opts.tls.is_some())?,
    });
    let (stop, shutdown) = watch::channel(false);
    let shutdown = Shutdown(shutdown);
    let tls = opts
        .tls
        .map(|files| listener::tls(files, shutdown.clone()))
        .transpose()?;

    tasks_prune(
        store.clone(),
        metrics.clone(),
        opts.keep_verdicts,
        shutdown.clone(),
    );
    recount_depth(store.clone(), metrics.clone(), shutdown.clone());
    let workers = Arc::new(Workers {
        store,
        services: opts.services,
        policies: policies.clone(),
        allowed: opts.allowed,
        publisher: Arc::new(Publisher::new(opts.outbound, metrics.clone(), policies)),
        metrics,
        wake: wake.clone(),
        lease: opts.lease,
        timeout: opts.timeout,
        first_retry: Duration::from_secs(5),
    });
    let instance = format!("{}-{}", hostname(), std::process::id());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..opts.workers.max(1) {
        tasks.spawn(
            workers
                .clone()
                .run(format!("{instance}-{n}"), shutdown.clone()),
        );
    }
    tracing::info!(
        %address,
        workers = opts.workers,
        tls = tls.is_some(),
        max_connections = opts.limits.max_connections,
        max_in_flight = opts.limits.max_in_flight,
        "listening"
    );
    // The admin listener is behind the same limits (and TLS) as the
    // receivers': it is no less reachable by whoever reaches its port.
    let admin_server = admin.map(|admin| {
        if let Ok(admin_address) = admin.local_addr() {
            tracing::info!(%admin_address, "the verdict API and /metrics listen here only");
        }
        let app = listener::limit_requests(
            http::admin_router(state.clone()),
            opts.limits.max_in_flight,
            metrics_for_listener.clone(),
        );
        tokio::spawn(listener::serve(
            admin,
            app,
            opts.limits,
            tls.clone(),
            metrics_for_listener.clone(),
            shutdown.clone(),
        ))
    });
    match read_api {
        ReadApi::Main => tracing::info!("the verdict API and /metrics require the read token"),
        ReadApi::Admin => {}
        ReadApi::Off => tracing::info!(
            "the verdict API and /metrics are off: give --api-token-file FILE \
             (a bearer token readers present) or --admin-listen ADDR to serve them"
        ),
    }

    let app = listener::limit_requests(
        http::router(state.clone()),
        opts.limits.max_in_flight,
        metrics_for_listener.clone(),
    );
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        opts.limits,
        tls,
        metrics_for_listener,
        shutdown.clone(),
    ));
    let mut ready_shutdown = shutdown.clone();
    let ready_state = state.clone();
    tokio::spawn(async move {
        ready_shutdown.wait().await;
        ready_state.ready.store(false, Ordering::Relaxed);
    });

    signal().await;
    tracing::info!("shutting down: no new deliveries; waiting for judgements in flight");
    let _ = stop.send(true);
    wake.notify_waiters();
    let drained = tokio::time::timeout(opts.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace = ?opts.grace,
            "judgements still running are left leased, and will be judged again after a restart"
        );
        tasks.abort_all();
    }
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(_) => {}
        Err(_) => tracing::warn!("open connections did not close in time"),
    }
    if let Some(admin_server) = admin_server {
        let _ = tokio::time::timeout(Duration::from_secs(2), admin_server).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Sets the kept queue depth from the store every [`DEPTH_RECOUNT`].
fn recount_depth(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut stop: Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEPTH_RECOUNT) => {}
                _ = stop.wait() => return,
            }
            match store.depth().await {
                Ok(depth) => metrics.set_depth(depth),
                Err(e) => tracing::debug!(error = %e.one_line(), "counting the queue failed"),
            }
        }
    });
}

/// Retention: at start, then every [`PRUNE_EVERY`] (or every `keep`, when
/// shorter), deletes verdicts and event ids older than `keep`, in batches.
fn tasks_prune(store: Arc<dyn Store>, metrics: Arc<Metrics>, keep: Duration, shutdown: Shutdown) {
    let every = keep.clamp(Duration::from_secs(1), PRUNE_EVERY);
    let mut stop = shutdown;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait() => return,
            }
            let before = store::now_ms().saturating_sub(store::millis(keep));
            let mut total = store::Pruned::default();
            loop {
                match store.prune(before).await {
                    Ok(p) => {
                        metrics.pruned("verdicts", p.verdicts);
                        metrics.pruned("events", p.events);
                        total.verdicts += p.verdicts;
                        total.events += p.events;
                        let full = store::PRUNE_BATCH as u64;
                        if (p.verdicts < full && p.events < full) || stop.is_set() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.one_line(), "retention: pruning failed; tried again later");
                        break;
                    }
                }
            }
            if total.verdicts + total.events > 0 {
                tracing::info!(
                    verdicts = total.verdicts,
                    events = total.events,
                    "retention: deleted what is older than --keep-verdicts"
                );
            }
        }
    });
}

/// SIGTERM (Kubernetes, systemd) or SIGINT (a terminal).
async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sizeguard".to_string())
}
