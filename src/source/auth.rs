//! Registry credentials, found where docker, podman and skopeo users keep
//! them. Every credential carries a description of where it came from, so
//! a 401 can say which source was tried; the secret itself never reaches a
//! message or a log.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use crate::error::Error;

#[derive(Clone)]
pub enum Secret {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json, or a helper
    /// answering with username `<token>`), exchanged for an access token.
    IdentityToken(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Anonymous => f.write_str("Anonymous"),
            Secret::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Secret::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credential {
    pub secret: Secret,
    /// Where it came from, e.g. `/root/.docker/config.json (auths)`.
    pub source: String,
}

impl Credential {
    pub fn anonymous() -> Self {
        Credential {
            secret: Secret::Anonymous,
            source: "anonymous (no credentials found)".to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The key Docker Hub credentials are stored under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Whether two hosts are names of one service that spans hosts: Docker
/// Hub's registry and its token service (`auth.docker.io`).
pub fn same_service(a: &str, b: &str) -> bool {
    let hub = |h: &str| is_docker_hub(h) || h == "auth.docker.io";
    hub(a) && hub(b)
}

/// `https://host:port/v1/` → `host:port`.
pub fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn key_matches(key: &str, host: &str) -> bool {
    let k = normalize_key(key);
    k == host || (is_docker_hub(host) && is_docker_hub(k))
}

/// Config files in the order they are consulted: containers' auth.json
/// (`$REGISTRY_AUTH_FILE`, then the podman/skopeo defaults), then Docker's.
fn config_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    } else {
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(run).join("containers/auth.json"));
        }
        if let Some(cfg) = std::env::var_os("XDG_CONFIG_HOME") {
            files.push(PathBuf::from(cfg).join("containers/auth.json"));
        } else if let Some(home) = std::env::var_os("HOME") {
            files.push(PathBuf::from(home).join(".config/containers/auth.json"));
        }
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        files.push(PathBuf::from(d).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".docker/config.json"));
    }
    files
}

/// Credentials given explicitly (`--username`/`--password-stdin`, a
/// `serve` registry's password file), and the one registry host they
/// belong to. They are never sent to any other host: a host that only a
/// policy file or an image names gets what the user's credential files say
/// for it, or nothing.
#[derive(Clone)]
pub struct Explicit {
    /// `HOST[:PORT]`, as the user named it.
    pub host: String,
    pub username: String,
    pub password: String,
    /// Where they came from, for messages.
    pub source: String,
}

impl std::fmt::Debug for Explicit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Explicit({} for {}, <redacted>)",
            self.username, self.host
        )
    }
}

impl Explicit {
    /// Whether these credentials belong to `host`.
    pub fn is_for(&self, host: &str) -> bool {
        key_matches(&self.host.to_ascii_lowercase(), &host.to_ascii_lowercase())
    }
}

/// Finds the credential for a registry host: `explicit` when they are for
/// this host (they win over every file), else the user's credential files.
/// This is the one place that decides which credential a registry host
/// gets.
pub fn lookup(host: &str, explicit: Option<&Explicit>) -> Result<Credential, Error> {
    if let Some(e) = explicit.filter(|e| e.is_for(host)) {
        return Ok(Credential {
            secret: Secret::Basic {
                username: e.username.clone(),
                password: e.password.clone(),
            },
            source: e.source.clone(),
        });
    }
    for path in config_files() {
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let file: ConfigFile = crate::go_json::from_slice(&raw).map_err(|e| {
            Error::usage(format!("{}: invalid credentials file", path.display())).with_source(e)
        })?;
        if let Some(c) = from_file(&file, host, &path.display().to_string())? {
            return Ok(c);
        }
    }
    Ok(Credential::anonymous())
}

fn from_file(file: &ConfigFile, host: &str, name: &str) -> Result<Option<Credential>, Error> {
    if let Some((_, helper)) = file.cred_helpers.iter().find(|(k, _)| key_matches(k, host))
        && let Some(secret) = run_helper(helper, host)?
    {
        return Ok(Some(Credential {
            secret,
            source: format!("docker-credential-{helper} (credHelpers in {name})"),
        }));
    }
    if let Some(store) = &file.creds_store
        && let Some(secret) = run_helper(store, host)?
    {
        return Ok(Some(Credential {
            secret,
            source: format!("docker-credential-{store} (credsStore in {name})"),
        }));
    }
    let Some((_, entry)) = file.auths.iter().find(|(k, _)| key_matches(k, host)) else {
        return Ok(None);
    };
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential {
            secret: Secret::IdentityToken(token.clone()),
            source: format!("{name} (identitytoken)"),
        }));
    }
    let basic = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => Some(decode_auth(auth, name)?),
        (_, Some(u), Some(p)) => Some((u.clone(), p.clone())),
        _ => None,
    };
    Ok(basic.map(|(username, password)| Credential {
        secret: Secret::Basic { username, password },
        source: format!("{name} (auths)"),
    }))
}

fn decode_auth(auth: &str, name: &str) -> Result<(String, String), Error> {
    let bad = || {
        Error::usage(format!(
            "{name}: an `auth` entry is not base64 of user:password"
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (u, p) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.to_string(), p.to_string()))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-NAME get`, per the docker-credential-helpers
/// protocol. "Not found" is `Ok(None)`; a missing helper is an error.
fn run_helper(helper: &str, host: &str) -> Result<Option<Secret>, Error> {
    let program = format!("docker-credential-{helper}");
    let server = if is_docker_hub(host) {
        DOCKER_HUB_KEY
    } else {
        host
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            // The credentials file names a helper this machine does not
            // have: a set-up problem, not the registry's.
            Error::usage(format!("credential helper {program} for {host}")).with_source(e)
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("credential helper {program}"), e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(Error::unauthorized(format!(
            "credential helper {program} failed for {host}: {}",
            msg.trim()
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|_| {
        Error::corrupt(format!(
            "credential helper {program} gave an unreadable answer for {host}"
        ))
    })?;
    if answer.username == "<token>" {
        return Ok(Some(Secret::IdentityToken(answer.secret)));
    }
    Ok(Some(Secret::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

/// The parameters of a `WWW-Authenticate: Bearer realm="..",service=".."`
/// challenge.
pub fn parse_bearer_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_lowercase(), value.trim().to_string());
    }
    params.contains_key("realm").then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let p = parse_bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
    }

    #[test]
    fn explicit_credentials_go_to_their_host_only() {
        let e = Explicit {
            host: "Reg.Example:5000".into(),
            username: "ci".into(),
            password: "hunter2".into(),
            source: "--username/--password-stdin (for --registry reg.example:5000)".into(),
        };
        let c = lookup("reg.example:5000", Some(&e)).unwrap();
        assert!(matches!(c.secret, Secret::Basic { ref password, .. } if password == "hunter2"));
        assert_eq!(c.source, e.source);
        // Another host, another port: not these credentials (lookup reads
        // the user's files for those).
        for other in ["reg.example:5001", "reg.example", "evil.example:5000"] {
            assert!(!e.is_for(other), "{other}");
        }
        assert!(!format!("{e:?}").contains("hunter2"));
        let hub = Explicit {
            host: "docker.io".into(),
            ..e
        };
        assert!(hub.is_for("index.docker.io"));
        assert!(hub.is_for("registry-1.docker.io"));
    }

    #[test]
    fn keys_match_hosts_and_docker_hub() {
        assert!(key_matches(
            "https://index.docker.io/v1/",
            "index.docker.io"
        ));
        assert!(key_matches("docker.io", "index.docker.io"));
        assert!(key_matches("https://127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!key_matches("127.0.0.1:5001", "127.0.0.1:5000"));
    }

    #[test]
    fn auths_entries_decode_and_secrets_are_redacted() {
        let file: ConfigFile = serde_json::from_str(
            r#"{"auths":{"reg.example:5000":{"auth":"dXNlcjpwYXNzOndpdGg6Y29sb25z"},"tok.example":{"identitytoken":"rt"}}}"#,
        )
        .unwrap();
        let c = from_file(&file, "reg.example:5000", "cfg")
            .unwrap()
            .unwrap();
        match &c.secret {
            Secret::Basic { username, password } => {
                assert_eq!(username, "user");
                assert_eq!(password, "pass:with:colons");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{:?}", c).contains("pass:with"));
        let t = from_file(&file, "tok.example", "cfg").unwrap().unwrap();
        assert!(matches!(t.secret, Secret::IdentityToken(_)));
        assert!(from_file(&file, "other", "cfg").unwrap().is_none());
    }
}
