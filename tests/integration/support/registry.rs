//! A real `docker-registry` (CNCF distribution 2.x) per test, plus `skopeo` helpers.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::require_tool;

/// Options for [`Registry::start_with`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOpts {
    /// Require HTTP basic auth with this (user, password) (bcrypt htpasswd file).
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a throwaway CA-signed cert for 127.0.0.1 / localhost.
    pub tls: bool,
    /// Send registry notifications (webhooks) to this endpoint URL.
    pub notifications: Option<String>,
    /// Headers every notification carries (`notifications.endpoints[].headers`).
    pub notification_headers: Vec<(String, String)>,
    /// More endpoints that get every notification too (same headers): two
    /// replicas of a service, each sent every event.
    pub also_notify: Vec<String>,
    /// Serve this storage directory (another registry's) read-only
    /// (`storage.maintenance.readonly`): reads work, pushes answer 405.
    pub read_only_storage: Option<PathBuf>,
}

pub struct Registry {
    /// `"127.0.0.1:PORT"`
    pub addr: String,
    /// CA certificate that signed the server cert (TLS only).
    pub ca_cert: Option<PathBuf>,
    /// Directory containing only `ca.crt` (for `--cert-dir` style flags; TLS only).
    pub cert_dir: Option<PathBuf>,
    /// Credentials required by the registry (htpasswd only).
    pub creds: Option<(String, String)>,
    pub tls: bool,
    /// Registry storage root (filesystem driver).
    pub storage_dir: PathBuf,
    /// Registry stdout+stderr log file.
    pub log_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Anonymous, plain-HTTP registry.
    pub fn start() -> Registry {
        Self::start_with(RegistryOpts::default())
    }

    pub fn start_with(opts: RegistryOpts) -> Registry {
        let mut last = None;
        // The port is picked by bind(0)+release, so retry on an "address in use" race.
        for _attempt in 0..3 {
            match Self::try_start(&opts) {
                Ok(reg) => return reg,
                Err(failure) => {
                    let port_taken = failure.port_taken;
                    last = Some(failure);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!("docker-registry failed to start: {}", last.unwrap().report);
    }

    fn try_start(opts: &RegistryOpts) -> Result<Registry, StartFailure> {
        let bin = require_tool("docker-registry", "apt-get install docker-registry");
        // skopeo is what every test uses to populate the registry: fail early.
        require_tool("skopeo", "apt-get install skopeo");
        let dir = tempfile::Builder::new()
            .prefix("sizeguard-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let storage_dir = match &opts.read_only_storage {
            Some(shared) => shared.clone(),
            None => dir.path().join("storage"),
        };
        fs::create_dir_all(&storage_dir).unwrap();

        let htpasswd_file = opts.htpasswd.as_ref().map(|(user, pass)| {
            let tool = require_tool("htpasswd", "apt-get install apache2-utils");
            let out = Command::new(tool)
                .args(["-Bbn", user, pass])
                .output()
                .expect("spawn htpasswd");
            assert!(
                out.status.success(),
                "htpasswd -Bbn failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.path().join("htpasswd");
            fs::write(&path, &out.stdout).unwrap();
            path
        });

        let tls_files = if opts.tls {
            Some(make_certs(dir.path()))
        } else {
            None
        };

        let log_path = dir.path().join("registry.log");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut yaml = String::new();
        yaml.push_str("version: 0.1\n");
        yaml.push_str("log:\n  level: error\n  accesslog:\n    disabled: true\n");
        yaml.push_str(&format!(
            "storage:\n  filesystem:\n    rootdirectory: {:?}\n  delete:\n    enabled: true\n",
            storage_dir.display().to_string()
        ));
        if opts.read_only_storage.is_some() {
            yaml.push_str("  maintenance:\n    readonly:\n      enabled: true\n");
        }
        yaml.push_str(&format!(
            "http:\n  addr: {addr}\n  secret: sizeguard-test-secret\n"
        ));
        if let Some(t) = &tls_files {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {:?}\n    key: {:?}\n",
                t.server_cert.display().to_string(),
                t.server_key.display().to_string()
            ));
        }
        if let Some(h) = &htpasswd_file {
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: sizeguard-test\n    path: {:?}\n",
                h.display().to_string()
            ));
        }
        if let Some(url) = &opts.notifications {
            yaml.push_str("notifications:\n  endpoints:\n");
            for (i, url) in std::iter::once(url).chain(&opts.also_notify).enumerate() {
                let name = if i == 0 {
                    "test".to_string()
                } else {
                    format!("test{i}")
                };
                yaml.push_str(&format!(
                    "    - name: {name}\n      url: {url:?}\n      timeout: 1s\n      threshold: 1\n      backoff: 1s\n"
                ));
                if !opts.notification_headers.is_empty() {
                    yaml.push_str("      headers:\n");
                    for (name, value) in &opts.notification_headers {
                        yaml.push_str(&format!("        {name}: [{value:?}]\n"));
                    }
                }
            }
        }
        let config = dir.path().join("config.yml");
        fs::write(&config, &yaml).unwrap();

        let log = File::create(&log_path).unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));

        let mut reg = Registry {
            addr,
            ca_cert: tls_files.as_ref().map(|t| t.ca_cert.clone()),
            cert_dir: tls_files.as_ref().map(|t| t.cert_dir.clone()),
            creds: opts.htpasswd.clone(),
            tls: opts.tls,
            storage_dir,
            log_path,
            child,
            _dir: dir,
        };
        match reg.wait_ready(Duration::from_secs(15)) {
            Ok(()) => Ok(reg),
            Err(e) => {
                let tail = reg.log_tail(4000);
                // Drop kills the child and removes the temp dir.
                Err(StartFailure {
                    port_taken: tail.contains("address already in use"),
                    report: format!("{e}\nconfig.yml:\n{yaml}\nregistry log tail:\n{tail}"),
                })
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(NotReady::Wait)? {
                return Err(NotReady::Exited(status));
            }
            if self.tls {
                if TcpStream::connect(&self.addr).is_ok() {
                    return Ok(());
                }
            } else if let Some(status) = http_status(&self.addr, "/v2/")
                && (status == 200 || status == 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NotReady::Silent(self.addr.clone(), timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// `ADDR/REPO:TAG`, the reference sizeguard is given for a pushed image.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.addr)
    }

    /// Path of a blob in the registry's filesystem storage (which tests
    /// damage or delete); panics if the blob is not there.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let p = self
            .storage_dir
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        assert!(
            p.is_file(),
            "blob {digest} not in registry storage at {}",
            p.display()
        );
        p
    }

    /// Last `max` bytes of the registry log.
    pub fn log_tail(&self, max: usize) -> String {
        let s = fs::read(&self.log_path).unwrap_or_default();
        let start = s.len().saturating_sub(max);
        String::from_utf8_lossy(&s[start..]).into_owned()
    }

    /// Common skopeo destination flags for this registry.
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        match &self.cert_dir {
            Some(d) => {
                a.push("--dest-tls-verify=true".to_string());
                a.push("--dest-cert-dir".to_string());
                a.push(d.display().to_string());
            }
            None => a.push("--dest-tls-verify=false".to_string()),
        }
        match &self.creds {
            Some((u, p)) => {
                a.push("--dest-creds".to_string());
                a.push(format!("{u}:{p}"));
            }
            None => a.push("--dest-no-creds".to_string()),
        }
        a
    }

    /// Push the image/index tagged `tag_in_layout` in the OCI layout (all
    /// platforms, digests preserved) to `docker://ADDR/REPO:TAG`.
    /// Panics with skopeo's stderr on failure.
    ///
    /// OCI-typed tags are pushed from `oci:LAYOUT:TAG`. skopeo 1.9's `oci:`
    /// transport ignores index.json entries with Docker media types, so
    /// Docker-typed tags are exported to a temporary `dir:` transport
    /// directory and pushed from there (bytes and digests unchanged).
    pub fn push_layout(&self, layout_dir: &Path, tag_in_layout: &str, repo_and_tag: &str) {
        let src = SkopeoSource::new(layout_dir, tag_in_layout);
        let mut args: Vec<String> =
            vec!["copy".into(), "--all".into(), "--preserve-digests".into()];
        args.extend(self.skopeo_dest_args());
        args.push(src.reference.clone());
        args.push(format!("docker://{}/{repo_and_tag}", self.addr));
        run_skopeo(&args, Some(self));
    }
}

/// Why a started `docker-registry` is not serving.
#[derive(Debug)]
enum NotReady {
    Wait(std::io::Error),
    Exited(ExitStatus),
    Silent(String, Duration),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Wait(e) => write!(f, "waiting for docker-registry: {e}"),
            NotReady::Exited(status) => write!(f, "docker-registry exited early with {status}"),
            NotReady::Silent(addr, timeout) => {
                write!(
                    f,
                    "docker-registry did not answer on {addr} within {timeout:?}"
                )
            }
        }
    }
}

/// A registry that did not come up: what to show, and whether another port
/// may do (the one picked was taken in between).
struct StartFailure {
    report: String,
    port_taken: bool,
}

/// A skopeo source reference for a tag in an OCI layout (see [`Registry::push_layout`]).
pub struct SkopeoSource {
    /// `oci:LAYOUT:TAG` or `dir:TMPDIR`.
    pub reference: String,
    _dir: Option<tempfile::TempDir>,
}

impl SkopeoSource {
    pub fn new(layout_dir: &Path, tag: &str) -> SkopeoSource {
        let index: serde_json::Value = serde_json::from_slice(
            &fs::read(layout_dir.join("index.json"))
                .unwrap_or_else(|e| panic!("read {}/index.json: {e}", layout_dir.display())),
        )
        .expect("parse index.json");
        let desc = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| {
                panic!(
                    "tag {tag:?} not found in {}/index.json",
                    layout_dir.display()
                )
            })
            .clone();
        let mt = desc["mediaType"].as_str().unwrap_or("");
        if mt.starts_with("application/vnd.oci.") {
            return SkopeoSource {
                reference: format!("oci:{}:{tag}", layout_dir.display()),
                _dir: None,
            };
        }
        // dir: transport layout: manifest.json (top level), <hex>.manifest.json
        // (instances of a list), <hex> (blobs), version.
        let tmp = tempfile::Builder::new()
            .prefix("sizeguard-skopeo-dir-")
            .tempdir()
            .unwrap();
        let blobs = layout_dir.join("blobs/sha256");
        let top = desc["digest"].as_str().expect("descriptor digest");
        let top_hex = top.strip_prefix("sha256:").expect("sha256 digest");
        fs::write(
            tmp.path().join("version"),
            "Directory Transport Version: 1.1\n",
        )
        .unwrap();
        fs::copy(blobs.join(top_hex), tmp.path().join("manifest.json")).expect("copy top manifest");
        for entry in fs::read_dir(&blobs).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            link_or_copy(&entry.path(), &tmp.path().join(&name));
            // Cheap to add for every small blob: any of them may be a list instance.
            if entry.metadata().map(|m| m.len() < 1 << 20).unwrap_or(false) {
                link_or_copy(
                    &entry.path(),
                    &tmp.path().join(format!("{name}.manifest.json")),
                );
            }
        }
        SkopeoSource {
            reference: format!("dir:{}", tmp.path().display()),
            _dir: Some(tmp),
        }
    }
}

fn link_or_copy(from: &Path, to: &Path) {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `_dir` (storage, config, certs, log) is removed by TempDir's Drop.
    }
}

/// Run `skopeo --insecure-policy ARGS...`; panic with stderr (and registry log tail) on failure.
pub fn run_skopeo(args: &[String], registry: Option<&Registry>) -> String {
    let skopeo = require_tool("skopeo", "apt-get install skopeo");
    let out = Command::new(&skopeo)
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("spawn skopeo");
    if !out.status.success() {
        panic!(
            "skopeo {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            registry
                .map(|r| format!("\nregistry log tail:\n{}", r.log_tail(2000)))
                .unwrap_or_default()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo copy oci:LAYOUT:TAG docker-archive:OUT:sizeguard-test:TAG`.
/// (For an index, skopeo picks the linux/amd64 image; layers end up uncompressed.)
pub fn copy_to_docker_archive(layout_dir: &Path, tag: &str, out_file: &Path) {
    copy_to_docker_archive_as(layout_dir, tag, out_file, &format!("sizeguard-test:{tag}"));
}

/// Like [`copy_to_docker_archive`] with an explicit `REPO:TAG` stored in `RepoTags`.
pub fn copy_to_docker_archive_as(layout_dir: &Path, tag: &str, out_file: &Path, reference: &str) {
    let _ = fs::remove_file(out_file); // docker-archive refuses to overwrite
    let src = SkopeoSource::new(layout_dir, tag);
    run_skopeo(
        &[
            "copy".into(),
            src.reference.clone(),
            format!("docker-archive:{}:{reference}", out_file.display()),
        ],
        None,
    );
}

/// `skopeo copy --all --preserve-digests --dest-oci-accept-uncompressed-layers
/// oci:LAYOUT:TAG oci-archive:OUT:TAG` (all platforms, bytes unchanged).
pub fn copy_to_oci_archive(layout_dir: &Path, tag: &str, out_file: &Path) {
    let _ = fs::remove_file(out_file);
    let src = SkopeoSource::new(layout_dir, tag);
    run_skopeo(
        &[
            "copy".into(),
            "--all".into(),
            "--preserve-digests".into(),
            "--dest-oci-accept-uncompressed-layers".into(),
            src.reference.clone(),
            format!("oci-archive:{}:{tag}", out_file.display()),
        ],
        None,
    );
}

/// A loopback port free now, for a server started next, and never handed
/// out before by this process: every area's tests run as threads of one
/// process, and two tests given the same just-closed port would race for it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if given.insert(port) {
            return port;
        }
    }
}

/// Accept header listing every manifest/index media type. Distribution 2.x
/// answers 404 MANIFEST_UNKNOWN for an OCI manifest/index when the client
/// does not accept OCI types.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Minimal plain-HTTP GET (no auth, no TLS) returning the status code (None
/// if no answer). Sends [`ACCEPT_ALL_MANIFESTS`].
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT_ALL_MANIFESTS}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 12 {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

struct TlsFiles {
    ca_cert: PathBuf,
    cert_dir: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let tool = require_tool("openssl", "apt-get install openssl");
    let out = Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn openssl");
    if !out.status.success() {
        panic!(
            "openssl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Throwaway CA + server certificate for 127.0.0.1 (IP SAN) and localhost.
fn make_certs(base: &Path) -> TlsFiles {
    let dir = base.join("tls");
    fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3",
            "-subj",
            "/CN=sizeguard-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-out",
            "server.crt",
            "-days",
            "3",
            "-sha256",
            "-extfile",
            "san.ext",
        ],
    );
    // skopeo/containers-image: every *.crt in the cert dir is a trusted CA;
    // *.cert/*.key pairs would be client certs, so keep only ca.crt there.
    let cert_dir = base.join("skopeo-certs");
    fs::create_dir_all(&cert_dir).unwrap();
    fs::copy(dir.join("ca.crt"), cert_dir.join("ca.crt")).unwrap();
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        cert_dir,
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    }
}
