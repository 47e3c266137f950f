//! `sizeguard serve`: flags and the `[serve]` section resolved into
//! [`ServeOptions`], once, before anything listens: a wrong policy, an
//! unreadable secret or no allowed registry stops the start (exit 2).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::Services;
use crate::budget::verdict::Verdict;
use crate::budget::verdict::{Level, node_holding};
use crate::cli::args::{LogFormat, ReceiverName, ServeArgs};
use crate::cli::request;
use crate::config::{ServeConfig, ServeReceiver, ServeRegistry, Settings};
use crate::error::Error;
use crate::measure::Measurer;
use crate::measure::cache::{LayerCache, default_dir};
use crate::publish::github::{DEFAULT_API_URL, Token};
use crate::publish::notify::{DEFAULT_NOTIFY_TIMEOUT, Notifier};
use crate::publish::status::web_host_of_api;
use crate::serve::admission::{AdmissionOptions, Mode, Pool, PoolNode, Unmeasured};
use crate::serve::events::Sender;
use crate::serve::events::auth::read_secret_file;
use crate::serve::events::github::GHCR;
use crate::serve::http::{Receiver, Receivers};
use crate::serve::listener::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, Limits, TlsFiles};
use crate::serve::outbound::{GithubStatuses, Notifications, Outbound};
use crate::serve::policy::{Baseline, Policies, PolicyInputs, check_registry_host, github_owner};
use crate::serve::sources::{LoggedProgress, RegistrySources};
use crate::serve::{ServeOptions, StoreChoice};
use crate::source::auth::Explicit;
use crate::source::registry::RegistryOptions;
use crate::units::parse_duration;

pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let options = options(&args)?;
    crate::serve::run(options).await
}

/// Logs for a service: info by default, as text or one JSON object a line.
pub fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "sizeguard=info",
        _ => "sizeguard=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn options(args: &ServeArgs) -> Result<ServeOptions, Error> {
    let mut file = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    let cfg = file.serve.take().unwrap_or_default();
    let store = match (&args.database_url, &cfg.database_url) {
        (Some(url), _) | (None, Some(url)) => StoreChoice::Database(url.clone()),
        (None, None) => StoreChoice::DataDir(
            args.data_dir
                .clone()
                .or(cfg.data_dir.clone())
                .ok_or_else(|| Error::usage("give --data-dir DIR (or --database-url URL)"))?,
        ),
    };
    let api_token = args
        .api_token_file
        .as_ref()
        .or(cfg.api_token_file.as_ref())
        .map(|file| read_secret_file(file).map(|token| (file, token)))
        .transpose()?;
    let keep_verdicts = match args.keep_verdicts.as_ref().or(cfg.keep_verdicts.as_ref()) {
        Some(text) => keep_duration(text)?,
        None => DEFAULT_KEEP,
    };

    let mut allowed: HashSet<String> = args
        .allow_registry
        .iter()
        .chain(cfg.registries.iter().map(|r| &r.host))
        .map(|h| h.to_ascii_lowercase())
        .collect();
    allowed.retain(|h| !h.is_empty());
    for host in &allowed {
        check_registry_host(host)?;
    }
    if allowed.is_empty() {
        return Err(Error::usage(
            "no registry allowed: give --allow-registry HOST[:PORT] (or [[serve.registries]])",
        ));
    }
    let receivers = receivers(args, &cfg, &allowed)?;
    let api_token = match api_token {
        Some((file, token)) => {
            let senders = [
                &receivers.distribution,
                &receivers.harbor,
                &receivers.github,
            ];
            if senders
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.secret == token))
            {
                return Err(Error::usage(format!(
                    "{}: the read token must not be the delivery secret of a receiver \
                     (whoever sends deliveries would read every report)",
                    file.display()
                )));
            }
            Some(token)
        }
        None => None,
    };
    let cache_dir = args.source.cache_dir.clone().or(match &store {
        StoreChoice::DataDir(d) => Some(d.join("layer-cache")),
        StoreChoice::Database(_) => default_dir(),
    });
    let services = Services {
        sources: Arc::new(sources(args, &cfg)?),
        measurer: Measurer {
            cache: (!args.source.no_cache)
                .then_some(cache_dir)
                .flatten()
                .map(LayerCache::new),
            analysis: request::analysis(&args.source),
            progress: Arc::new(LoggedProgress),
        },
    };
    let policies = Policies::build(
        PolicyInputs {
            file: &file,
            flags: &args.settings,
            repositories: &cfg.repositories,
            default_baseline: default_baseline(args, &cfg)?,
        },
        request::platforms(&args.source)?,
        request::measure_options(&args.source, args.top)?,
    )?;
    let mut tls = tls_files(args, &cfg)?;
    let admission = admission(&cfg, &file, tls.is_some(), &receivers)?;
    if let (Some(tls), Some(a)) = (&mut tls, &admission) {
        tls.client_ca = a.client_ca.clone();
    }
    let workers = args.workers.or(cfg.workers).unwrap_or(2);
    if workers == 0 {
        return Err(Error::usage("--workers must be at least 1"));
    }
    Ok(ServeOptions {
        listen: args
            .listen
            .clone()
            .or(cfg.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_string()),
        store,
        receivers,
        allowed,
        limits: limits(args, &cfg)?,
        tls,
        workers,
        max_queue: args.max_queue.or(cfg.max_queue).unwrap_or(10_000),
        lease: Duration::from_secs(args.lease.max(1)),
        timeout: Duration::from_secs(args.job_timeout.max(1)),
        grace: Duration::from_secs(args.shutdown_grace),
        services,
        policies,
        outbound: outbound(args, &cfg)?,
        api_token,
        admin_listen: args.admin_listen.clone().or(cfg.admin_listen.clone()),
        keep_verdicts,
        admission,
    })
}

/// `[serve.admission]` resolved: off without the table (or with
/// `enabled = false`); on, it needs TLS (the API server calls webhooks
/// over HTTPS only) and a token of its own, and every pool's profile must
/// name a node.
fn admission(
    cfg: &ServeConfig,
    file: &Settings,
    tls: bool,
    receivers: &Receivers,
) -> Result<Option<AdmissionOptions>, Error> {
    let Some(a) = cfg.admission.as_ref().filter(|a| a.enabled.unwrap_or(true)) else {
        return Ok(None);
    };
    if !tls {
        return Err(Error::usage(
            "[serve.admission] needs TLS: the API server calls webhooks over HTTPS only \
             (give --tls-cert FILE and --tls-key FILE, or tls-cert and tls-key in [serve])",
        ));
    }
    if a.token_file.is_none() && a.client_ca_file.is_none() {
        return Err(Error::usage(
            "[serve.admission] needs token-file (the bearer token the API server presents) \
             or client-ca-file (the CA of its client certificate): the answers show image \
             figures to whoever can ask",
        ));
    }
    let token = match &a.token_file {
        None => None,
        Some(token_file) => {
            let token = read_secret_file(token_file)?;
            let senders = [
                &receivers.distribution,
                &receivers.harbor,
                &receivers.github,
            ];
            if senders
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.secret == token))
            {
                return Err(Error::usage(format!(
                    "{}: the admission token must not be the delivery secret of a receiver",
                    token_file.display()
                )));
            }
            if token.len() < MIN_SECRET_BYTES {
                tracing::warn!(
                    file = %token_file.display(),
                    "the admission token is shorter than {MIN_SECRET_BYTES} bytes: use a long random one"
                );
            }
            Some(token)
        }
    };
    let mode = match a.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("audit") => Mode::Audit,
        Some(other) => {
            return Err(Error::usage(format!(
                "[serve.admission] mode {other:?} is not enforce or audit"
            )));
        }
    };
    let unmeasured = match a.unmeasured.as_deref() {
        None | Some("allow") => Unmeasured::Allow,
        Some("deny") => Unmeasured::Deny,
        Some(other) => {
            return Err(Error::usage(format!(
                "[serve.admission] unmeasured {other:?} is not allow or deny"
            )));
        }
    };
    let exempt = a
        .exempt_namespaces
        .clone()
        .unwrap_or_else(|| vec!["kube-system".to_string()])
        .into_iter()
        .collect();
    let mut pools = Vec::new();
    for p in &a.pools {
        let what = format!("[[serve.admission.pools]] profile {:?}", p.profile);
        if p.selector.is_empty() {
            return Err(Error::usage(format!(
                "{what}: selector is empty (a pool is the nodes whose labels it names)"
            )));
        }
        let settings = Settings::layered([
            Settings {
                node_profile: Some(p.profile.clone()),
                ..Settings::default()
            },
            file.clone(),
        ]);
        // As `check` judges with a profile: its node, and the runtime it
        // names (else the file's) as the store model.
        let judging = settings
            .judging(&Settings::default())
            .map_err(|e| e.context(&what))?;
        let input = judging.node.ok_or_else(|| {
            Error::usage(format!(
                "{what}: the profile names no node (give it capacity or stats)"
            ))
        })?;
        let node = PoolNode {
            profile: p.profile.clone(),
            input,
            thresholds: judging.thresholds,
            store: judging.policy.store,
            gc_level: judging.policy.gc_headroom_level.unwrap_or(Level::Fail),
        };
        // A profile whose figures the kubelet arithmetic refuses stops the
        // start, not a review.
        node_holding(node.input.clone(), None, node.thresholds).map_err(|e| e.context(&what))?;
        pools.push(Pool {
            selector: p.selector.clone(),
            node,
        });
    }
    Ok(Some(AdmissionOptions {
        mode,
        unmeasured,
        exempt,
        token,
        client_ca: a.client_ca_file.clone(),
        pools,
    }))
}

/// Secrets shorter than this are warned of: a guessable secret is all
/// that stands between a stranger and the queue.
const MIN_SECRET_BYTES: usize = 16;

/// Each receiver's secret and registries, or `None` when it is switched
/// off. A receiver is on when a secret for it is known, unless told
/// otherwise; at least one must be on.
fn receivers(
    args: &ServeArgs,
    cfg: &ServeConfig,
    allowed: &HashSet<String>,
) -> Result<Receivers, Error> {
    let shared = args.secret_file.as_ref().or(cfg.secret_file.as_ref());
    let mut warned = HashSet::new();
    let mut one = |sender: Sender,
                   flag: &Option<PathBuf>,
                   file: &Option<ServeReceiver>,
                   off_flag: ReceiverName|
     -> Result<Option<Receiver>, Error> {
        let name = crate::serve::store::sender_name(sender);
        let file = file.clone().unwrap_or_default();
        let secret_file = flag.as_ref().or(file.secret_file.as_ref()).or(shared);
        let on = !args.disable_receiver.contains(&off_flag)
            && file.enabled.unwrap_or(secret_file.is_some());
        if !on {
            return Ok(None);
        }
        let secret_file = secret_file.ok_or_else(|| {
            Error::usage(format!(
                "the {name} receiver is enabled but has no secret: give --{name}-secret-file FILE \
                 (or --secret-file FILE)"
            ))
        })?;
        let secret = read_secret_file(secret_file)?;
        if secret.len() < MIN_SECRET_BYTES && warned.insert(secret_file.clone()) {
            tracing::warn!(
                file = %secret_file.display(),
                bytes = secret.len(),
                "the secret is shorter than {MIN_SECRET_BYTES} bytes: a guessable secret lets \
                 anyone queue work; use a long random one"
            );
        }
        let registries: HashSet<String> = match file.registries {
            Some(list) => list
                .iter()
                .map(|h| {
                    let h = h.to_ascii_lowercase();
                    if allowed.contains(&h) {
                        Ok(h)
                    } else {
                        Err(Error::usage(format!(
                            "[serve.receivers.{name}] registries: {h:?} is not an allowed \
                             registry (--allow-registry or [[serve.registries]])"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
            // GitHub's packages live in one registry whatever the
            // delivery says.
            None if matches!(sender, Sender::Github) => {
                allowed.iter().filter(|h| *h == GHCR).cloned().collect()
            }
            None => allowed.clone(),
        };
        Ok(Some(Receiver { secret, registries }))
    };
    let r = &cfg.receivers;
    let receivers = Receivers {
        distribution: one(
            Sender::Distribution,
            &args.distribution_secret_file,
            &r.distribution,
            ReceiverName::Distribution,
        )?,
        harbor: one(
            Sender::Harbor,
            &args.harbor_secret_file,
            &r.harbor,
            ReceiverName::Harbor,
        )?,
        github: one(
            Sender::Github,
            &args.github_secret_file,
            &r.github,
            ReceiverName::Github,
        )?,
    };
    if receivers.distribution.is_none() && receivers.harbor.is_none() && receivers.github.is_none()
    {
        return Err(Error::usage(
            "no receiver enabled: give --secret-file FILE: the secret senders present",
        ));
    }
    Ok(receivers)
}

fn limits(args: &ServeArgs, cfg: &ServeConfig) -> Result<Limits, Error> {
    let max_connections = args
        .max_connections
        .or(cfg.max_connections)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let max_in_flight = args
        .max_in_flight
        .or(cfg.max_in_flight)
        .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_connections == 0 || max_in_flight == 0 {
        return Err(Error::usage(
            "--max-connections and --max-in-flight must be at least 1",
        ));
    }
    if max_connections > u32::MAX as usize {
        return Err(Error::usage("--max-connections is too large"));
    }
    Ok(Limits {
        max_connections,
        max_in_flight,
    })
}

fn tls_files(args: &ServeArgs, cfg: &ServeConfig) -> Result<Option<TlsFiles>, Error> {
    let cert = args.tls_cert.as_ref().or(cfg.tls_cert.as_ref());
    let key = args.tls_key.as_ref().or(cfg.tls_key.as_ref());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        })),
        (None, None) => Ok(None),
        _ => Err(Error::usage(
            "--tls-cert FILE and --tls-key FILE go together (tls-cert and tls-key in [serve])",
        )),
    }
}

/// Verdicts kept when nothing says otherwise: 90 days.
const DEFAULT_KEEP: Duration = Duration::from_secs(90 * 24 * 3600);

/// `--keep-verdicts`: `--timeout`'s durations (`2160h`, `90m`), or whole
/// days (`90d`).
fn keep_duration(text: &str) -> Result<Duration, Error> {
    let days = text
        .trim()
        .strip_suffix('d')
        .and_then(|n| n.parse::<u64>().ok());
    match days {
        Some(0) => Err(Error::usage(format!(
            "--keep-verdicts {text:?}: must be more than 0"
        ))),
        Some(n) => n
            .checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| Error::usage(format!("--keep-verdicts {text:?}: too long"))),
        None => parse_duration(text).map_err(|e| e.context("--keep-verdicts")),
    }
}

/// Commit statuses and notifications, when configured; a half-configured
/// one stops the start.
fn outbound(args: &ServeArgs, cfg: &ServeConfig) -> Result<Outbound, Error> {
    let public_url = args
        .public_url
        .clone()
        .or(cfg.public_url.clone())
        .map(|u| {
            let parsed = url::Url::parse(&u)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https"));
            parsed
                .map(|_| u.trim_end_matches('/').to_string())
                .ok_or_else(|| Error::usage(format!("--public-url {u:?} is not an http(s) URL")))
        })
        .transpose()?;
    Ok(Outbound {
        github: github_statuses(args, cfg)?,
        notify: notifications(args, cfg)?,
        public_url,
    })
}

fn github_statuses(args: &ServeArgs, cfg: &ServeConfig) -> Result<Option<GithubStatuses>, Error> {
    let file = cfg.github.clone().unwrap_or_default();
    let api_url = args
        .github_api_url
        .clone()
        .or(file.api_url)
        .unwrap_or_else(|| DEFAULT_API_URL.to_string())
        .trim_end_matches('/')
        .to_string();
    let Some(token_file) = args.github_token_file.as_ref().or(file.token_file.as_ref()) else {
        if cfg.github.is_some() || args.github_api_url.is_some() {
            return Err(Error::usage(
                "commit statuses need a token: give --github-token-file FILE \
                 (or token-file in [serve.github])",
            ));
        }
        return Ok(None);
    };
    if !url::Url::parse(&api_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(Error::usage(format!(
            "--github-api-url {api_url:?} is not an http(s) URL"
        )));
    }
    let token = read_secret_file(token_file)?;
    let token = String::from_utf8(token)
        .ok()
        .and_then(Token::new)
        .ok_or_else(|| {
            Error::usage(format!(
                "{}: not a GitHub token (empty or not UTF-8)",
                token_file.display()
            ))
        })?;
    let web_host = file
        .host
        .map(|h| h.to_ascii_lowercase())
        .or_else(|| web_host_of_api(&api_url))
        .unwrap_or_else(|| "github.com".to_string());
    let mut owners = Vec::new();
    for name in args.github_owner.iter().chain(&file.owners) {
        owners.push(github_owner(name).ok_or_else(|| {
            Error::usage(format!(
                "--github-owner {name:?} is not a GitHub owner name"
            ))
        })?);
    }
    let tied = cfg.repositories.iter().any(|r| !r.github.is_empty());
    if owners.is_empty() && !tied {
        tracing::warn!(
            "no commit status will be set: no GitHub repository is tied to an image repository \
             (give --github-owner OWNER, owners in [serve.github], or github in a \
             [[serve.repositories]] entry)"
        );
    }
    tracing::info!(
        api_url,
        github_host = web_host,
        owners = owners.join(","),
        "commit statuses for images whose source label names a repository on the GitHub host \
         that the configuration ties to the image's repository"
    );
    Ok(Some(GithubStatuses {
        api_url,
        token,
        web_host,
        context: file.context.unwrap_or_else(|| "sizeguard".to_string()),
        owners,
    }))
}

fn notifications(args: &ServeArgs, cfg: &ServeConfig) -> Result<Option<Notifications>, Error> {
    let file = cfg.notify.clone().unwrap_or_default();
    let Some(url) = args.notify_url.as_ref().or(file.url.as_ref()) else {
        if cfg.notify.is_some() {
            return Err(Error::usage("[serve.notify] needs a url"));
        }
        return Ok(None);
    };
    let mut notifier = Notifier::new(url, DEFAULT_NOTIFY_TIMEOUT)?;
    if let Some(secret_file) = &file.secret_file {
        let secret = read_secret_file(secret_file)?;
        let secret = String::from_utf8(secret).map_err(|_| {
            Error::usage(format!(
                "{}: the secret is not UTF-8",
                secret_file.display()
            ))
        })?;
        let header = file.header.as_deref().unwrap_or("Authorization");
        notifier = notifier.with_header(header, &secret)?;
    } else if file.header.is_some() {
        return Err(Error::usage(
            "[serve.notify] header needs secret-file: the file holds its value",
        ));
    }
    let on = match &file.on {
        None => vec![Verdict::Warn, Verdict::Fail],
        Some(names) => names
            .iter()
            .map(|n| match n.as_str() {
                "pass" => Ok(Verdict::Pass),
                "warn" => Ok(Verdict::Warn),
                "fail" => Ok(Verdict::Fail),
                other => Err(Error::usage(format!(
                    "[serve.notify] on: {other:?} is not pass, warn or fail"
                ))),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(Notifications { notifier, on }))
}

fn default_baseline(args: &ServeArgs, cfg: &ServeConfig) -> Result<Baseline, Error> {
    let tag = args.baseline_tag.as_ref().or(cfg.baseline_tag.as_ref());
    let reference = args.baseline.as_ref().or(cfg.baseline.as_ref());
    Ok(match (tag, reference) {
        (Some(_), Some(_)) if args.baseline_tag.is_none() && args.baseline.is_none() => {
            return Err(Error::usage(
                "serve: baseline and baseline-tag exclude each other",
            ));
        }
        // A flag wins over the file's other kind of baseline.
        (Some(t), _) if args.baseline_tag.is_some() || args.baseline.is_none() => {
            Baseline::Tag(t.clone())
        }
        (_, Some(r)) => Baseline::Reference(r.clone()),
        (Some(t), None) => Baseline::Tag(t.clone()),
        (None, None) => Baseline::None,
    })
}

/// One factory per configured registry with credentials of its own, and
/// one (flags' credentials, else the docker config) for every other.
fn sources(args: &ServeArgs, cfg: &ServeConfig) -> Result<RegistrySources, Error> {
    let job_timeout = Duration::from_secs(args.job_timeout.max(1));
    let mut insecure = args.source.insecure_registry.clone();
    insecure.extend(
        cfg.registries
            .iter()
            .filter(|r| r.insecure)
            .map(|r| r.host.clone()),
    );
    let base = RegistryOptions {
        insecure,
        ca_files: args.source.ca_file.clone(),
        // The flags' credentials: for --registry, else for the one
        // --allow-registry when there is exactly one.
        basic: request::basic_credentials(
            &args.source,
            match args.allow_registry.as_slice() {
                [only] => Some(only.to_ascii_lowercase()),
                _ => None,
            },
        )?,
        // Per image, like the CLI's per run: a judgement gets the whole
        // job timeout for its registry requests.
        timeout: Some(job_timeout),
    };
    let mut by_host = HashMap::new();
    for r in &cfg.registries {
        if let Some(basic) = registry_credentials(r)? {
            let options = RegistryOptions {
                basic: Some(basic),
                ..base.clone()
            };
            by_host.insert(r.host.to_ascii_lowercase(), options);
        }
    }
    Ok(RegistrySources {
        by_host,
        default: base,
    })
}

fn registry_credentials(r: &ServeRegistry) -> Result<Option<Explicit>, Error> {
    match (&r.username, &r.password_file) {
        (None, None) => Ok(None),
        (Some(user), Some(file)) => {
            let password = read_secret_file(file).map_err(|e| e.context(&r.host))?;
            let password = String::from_utf8(password)
                .map_err(|_| Error::usage(format!("{}: the password file is not UTF-8", r.host)))?;
            Ok(Some(Explicit {
                host: r.host.to_ascii_lowercase(),
                username: user.clone(),
                password,
                source: format!("serve.registries {:?} (username, password-file)", r.host),
            }))
        }
        _ => Err(Error::usage(format!(
            "serve.registries {:?}: username and password-file go together",
            r.host
        ))),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::args::{Cli, Command};
    use crate::error::Kind;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["sizeguard", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => *a,
            _ => unreachable!("parsed as serve"),
        }
    }

    fn serve_config(toml_text: &str) -> ServeConfig {
        let settings: Settings = toml::from_str(toml_text).unwrap();
        settings.serve.unwrap_or_default()
    }

    #[test]
    fn admission_pools_take_their_profiles_node_and_runtime() {
        use crate::budget::cost::StoreModel;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "an-admission-token-long-enough\n").unwrap();
        let text = format!(
            r#"
runtime = "containerd"
[nodes.gpu]
capacity = "50Gi"
runtime = "cri-o"
[nodes.cpu]
capacity = "100Gi"
[serve.admission]
token-file = {:?}
mode = "audit"
[[serve.admission.pools]]
selector = {{ "node.kubernetes.io/instance-type" = "g5.xlarge" }}
profile = "gpu"
[[serve.admission.pools]]
selector = {{ "node.kubernetes.io/instance-type" = "m5.large" }}
profile = "cpu"
"#,
            token.display().to_string()
        );
        let mut file: Settings = toml::from_str(&text).unwrap();
        let cfg = file.serve.take().unwrap();
        let a = admission(&cfg, &file, true, &Receivers::default())
            .unwrap()
            .unwrap();
        assert_eq!(a.mode, Mode::Audit);
        assert_eq!(a.unmeasured, Unmeasured::Allow);
        assert!(a.exempt.contains("kube-system"));
        assert_eq!(
            a.token.as_deref(),
            Some(&b"an-admission-token-long-enough"[..])
        );
        let gpu = &a.pools[0].node;
        assert_eq!(gpu.profile, "gpu");
        assert_eq!(gpu.input.nodes[0].capacity_bytes, 50 << 30);
        assert_eq!(gpu.store, StoreModel::parse("cri-o").unwrap());
        assert_eq!(
            a.pools[1].node.store,
            StoreModel::parse("containerd").unwrap()
        );
        // Off without TLS is refused, not silently plain.
        let e = admission(&cfg, &file, false, &Receivers::default()).unwrap_err();
        assert_eq!(e.kind(), Kind::Usage);
    }

    #[test]
    fn publishing_from_the_file_and_from_flags() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "ghs_abc\n").unwrap();
        let hook_secret = dir.path().join("hook");
        std::fs::write(&hook_secret, "Bearer xyz\n").unwrap();
        let cfg = serve_config(&format!(
            r#"
[serve]
public-url = "https://sizeguard.example/"
[serve.github]
token-file = "{}"
api-url = "https://ghe.example.com/api/v3"
context = "images"
[serve.notify]
url = "https://hooks.example.com/T/SECRET"
on = ["fail"]
secret-file = "{}"
header = "X-Token"
"#,
            token.display(),
            hook_secret.display()
        ));
        let out = outbound(&serve_args(&[]), &cfg).unwrap();
        let github = out.github.unwrap();
        assert_eq!(github.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(github.web_host, "ghe.example.com");
        assert_eq!(github.context, "images");
        assert_eq!(github.token.expose(), "ghs_abc");
        let notify = out.notify.unwrap();
        assert_eq!(notify.on, [Verdict::Fail]);
        assert!(!format!("{notify:?}").contains("SECRET"));
        assert_eq!(out.public_url.as_deref(), Some("https://sizeguard.example"));

        // Flags alone: the public API, github.com, warn and fail.
        let token_flag = token.display().to_string();
        let args = serve_args(&[
            "--github-token-file",
            &token_flag,
            "--notify-url",
            "http://127.0.0.1:9/hook",
        ]);
        let out = outbound(&args, &ServeConfig::default()).unwrap();
        let github = out.github.unwrap();
        assert_eq!(github.api_url, DEFAULT_API_URL);
        assert_eq!(github.web_host, "github.com");
        assert_eq!(github.context, "sizeguard");
        assert_eq!(out.notify.unwrap().on, [Verdict::Warn, Verdict::Fail]);
        assert!(out.public_url.is_none());

        // Nothing configured: nothing goes out.
        let out = outbound(&serve_args(&[]), &ServeConfig::default()).unwrap();
        assert!(out.github.is_none() && out.notify.is_none());
    }

    #[test]
    fn half_configured_publishing_stops_the_start() {
        let usage = |args: &[&str], toml_text: &str| {
            let e = outbound(&serve_args(args), &serve_config(toml_text)).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{toml_text}: {e:?}");
            e.one_line()
        };
        usage(&[], "[serve.github]\ncontext = \"x\"\n");
        usage(&["--github-api-url", "https://ghe.example.com/api/v3"], "");
        usage(&[], "[serve.notify]\non = [\"fail\"]\n");
        usage(
            &[],
            "[serve.notify]\nurl = \"https://h.example/x\"\non = [\"error\"]\n",
        );
        usage(
            &[],
            "[serve.notify]\nurl = \"https://h.example/x\"\nheader = \"X-Token\"\n",
        );
        let shown = usage(&["--notify-url", "ftp://h.example/SECRETPATH"], "");
        assert!(!shown.contains("SECRETPATH"), "{shown}");
        usage(&["--public-url", "not a url"], "");
    }

    #[test]
    fn receivers_secrets_registries_and_switches() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::write(&shared, "a-long-enough-shared-secret\n").unwrap();
        let github = dir.path().join("github");
        std::fs::write(&github, "a-long-enough-hmac-key\n").unwrap();
        let allowed: HashSet<String> = ["ghcr.io", "reg.example:5000"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let shared_flag = shared.display().to_string();
        let github_flag = github.display().to_string();

        // One shared secret: every receiver on, GitHub's on ghcr.io only.
        let r = receivers(
            &serve_args(&["--secret-file", &shared_flag]),
            &ServeConfig::default(),
            &allowed,
        )
        .unwrap();
        let d = r.distribution.unwrap();
        assert_eq!(d.secret, b"a-long-enough-shared-secret");
        assert_eq!(d.registries, allowed);
        let g = r.github.unwrap();
        assert_eq!(g.registries, HashSet::from(["ghcr.io".to_string()]));
        assert!(r.harbor.is_some());

        // GitHub's own key, Harbor off by flag, Distribution off by file.
        let r = receivers(
            &serve_args(&[
                "--secret-file",
                &shared_flag,
                "--github-secret-file",
                &github_flag,
                "--disable-receiver",
                "harbor",
            ]),
            &serve_config("[serve.receivers.distribution]\nenabled = false\n"),
            &allowed,
        )
        .unwrap();
        assert!(r.distribution.is_none() && r.harbor.is_none());
        assert_eq!(r.github.unwrap().secret, b"a-long-enough-hmac-key");

        // Only GitHub has a secret: only GitHub is on.
        let r = receivers(
            &serve_args(&["--github-secret-file", &github_flag]),
            &ServeConfig::default(),
            &allowed,
        )
        .unwrap();
        assert!(r.distribution.is_none() && r.harbor.is_none() && r.github.is_some());

        let usage = |args: &[&str], toml_text: &str| {
            let e = receivers(&serve_args(args), &serve_config(toml_text), &allowed)
                .err()
                .unwrap_or_else(|| panic!("{args:?} {toml_text}: accepted"));
            assert_eq!(e.kind(), Kind::Usage, "{toml_text}: {e:?}");
            e.one_line()
        };
        assert!(usage(&[], "").contains("--secret-file"));
        assert!(
            usage(
                &["--github-secret-file", &github_flag],
                "[serve.receivers.harbor]\nenabled = true\n"
            )
            .contains("harbor")
        );
        assert!(
            usage(
                &["--secret-file", &shared_flag],
                "[serve.receivers.harbor]\nregistries = [\"REG.example:5000\", \"other.example\"]\n"
            )
            .contains("other.example")
        );
        let all_off = [
            "--secret-file",
            &shared_flag,
            "--disable-receiver",
            "harbor",
            "--disable-receiver",
            "github",
            "--disable-receiver",
            "distribution",
        ];
        usage(&all_off, "");
        // A listed registry is matched case-insensitively.
        let r = receivers(
            &serve_args(&["--secret-file", &shared_flag]),
            &serve_config("[serve.receivers.harbor]\nregistries = [\"REG.example:5000\"]\n"),
            &allowed,
        )
        .unwrap();
        assert_eq!(
            r.harbor.unwrap().registries,
            HashSet::from(["reg.example:5000".to_string()])
        );
    }

    #[test]
    fn limits_and_tls_flags() {
        let l = limits(&serve_args(&[]), &ServeConfig::default()).unwrap();
        assert_eq!(l.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(l.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        let l = limits(
            &serve_args(&["--max-in-flight", "3"]),
            &serve_config("[serve]\nmax-connections = 9\nmax-in-flight = 5\n"),
        )
        .unwrap();
        assert_eq!((l.max_connections, l.max_in_flight), (9, 3));
        let e = limits(
            &serve_args(&["--max-connections", "0"]),
            &ServeConfig::default(),
        );
        assert_eq!(e.unwrap_err().kind(), Kind::Usage);

        assert!(
            tls_files(&serve_args(&[]), &ServeConfig::default())
                .unwrap()
                .is_none()
        );
        let both = tls_files(
            &serve_args(&["--tls-cert", "c.pem"]),
            &serve_config("[serve]\ntls-key = \"k.pem\"\n"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (both.cert.to_str(), both.key.to_str()),
            (Some("c.pem"), Some("k.pem"))
        );
        let half = tls_files(
            &serve_args(&["--tls-key", "k.pem"]),
            &ServeConfig::default(),
        );
        assert_eq!(half.unwrap_err().kind(), Kind::Usage);
    }

    #[test]
    fn the_read_token_is_not_the_delivery_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let same = dir.path().join("same");
        std::fs::write(&same, "s3cret").unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "r3ad\n").unwrap();
        let data = dir.path().join("data").display().to_string();
        let args = |token: &std::path::Path| {
            serve_args(&[
                "--data-dir",
                &data,
                "--secret-file",
                secret.to_str().unwrap(),
                "--allow-registry",
                "127.0.0.1:5000",
                "--api-token-file",
                token.to_str().unwrap(),
            ])
        };
        let e = options(&args(&same)).err().unwrap();
        assert_eq!(e.kind(), Kind::Usage);
        assert!(
            e.one_line().contains("must not be the delivery secret"),
            "{e}"
        );
        let o = options(&args(&other)).unwrap();
        assert_eq!(o.api_token.as_deref(), Some(&b"r3ad"[..]));
        assert_eq!(o.keep_verdicts, DEFAULT_KEEP);
    }

    #[test]
    fn keep_times() {
        assert_eq!(keep_duration("90d").unwrap(), DEFAULT_KEEP);
        assert_eq!(keep_duration("2160h").unwrap(), DEFAULT_KEEP);
        assert_eq!(keep_duration("2s").unwrap(), Duration::from_secs(2));
        for bad in ["0d", "0", "ten", "5w", "d", "-1d"] {
            assert_eq!(keep_duration(bad).unwrap_err().kind(), Kind::Usage, "{bad}");
        }
    }
}
