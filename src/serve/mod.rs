//! `sizeguard serve`: the registry webhook validator. Receivers turn
//! registry notifications into queued work; workers judge each pushed
//! image through the same app layer as `check`.
//!
//! - [`events`]: each sender's notifications reduced to one shape.
//! - [`store`]: the durable queue and the verdicts (SQLite embedded).
//! - [`http`]: receivers, the verdict API, health and metrics.
//! - [`listener`]: the inbound limits (timeouts, caps) and TLS.
//! - [`worker`]: claim, judge, record.
//! - [`policy`]: which rules and baseline a repository gets.
//! - [`outbound`]: verdicts out to a GitHub commit status and a chat webhook.

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
use crate::serve::http::{AppState, Receivers};
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
}

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
    let metrics = Arc::new(Metrics::new());
    let metrics_for_listener = metrics.clone();
    let wake = Arc::new(Notify::new());
    let state = Arc::new(AppState {
        store: store.clone(),
        receivers: opts.receivers,
        max_queue: opts.max_queue,
        retry_after: 5,
        metrics: metrics.clone(),
        wake: wake.clone(),
        ready: AtomicBool::new(true),
    });
    let (stop, shutdown) = watch::channel(false);
    let shutdown = Shutdown(shutdown);
    let tls = opts
        .tls
        .map(|files| listener::tls(files, shutdown.clone()))
        .transpose()?;

    let workers = Arc::new(Workers {
        store,
        services: opts.services,
        policies: Arc::new(opts.policies),
        allowed: opts.allowed,
        publisher: Arc::new(Publisher::new(opts.outbound, metrics.clone())),
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
    tracing::info!("stopped");
    Ok(())
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
