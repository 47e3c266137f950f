//! A Podman store in a temporary directory: images copied in with
//! skopeo, saved with `podman save` or pushed with `buildah push`, or
//! served by Podman's Docker-compatible API service.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::registry::SkopeoSource;
use super::require_tool;

/// A Podman store in a temporary directory and, once started, its API
/// service. Dropping it stops the service and unmounts what the overlay
/// driver mounted, whether the test passed or not.
pub struct Podman {
    dir: tempfile::TempDir,
    driver: &'static str,
    /// The graphroot, when not the temporary directory's `root`.
    graphroot: Option<PathBuf>,
    service: Option<Child>,
}

impl Podman {
    pub fn new() -> Podman {
        require_tool("podman", "apt-get install podman");
        require_tool("skopeo", "apt-get install skopeo");
        let dir = tempfile::Builder::new()
            .prefix("sizeguard-podman-")
            .tempdir()
            .unwrap();
        for sub in ["root", "runroot", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Podman {
            dir,
            driver: "overlay",
            graphroot: None,
            service: None,
        }
    }

    /// A store whose graphroot (layers, images, their metadata) is
    /// `graphroot`, e.g. a filesystem standing in for a node's imageFS;
    /// the run root and temporary files stay in the temporary directory.
    /// Always the overlay driver: no fallback to vfs.
    pub fn with_graphroot(graphroot: &Path) -> Podman {
        let mut p = Podman::new();
        p.graphroot = Some(graphroot.to_path_buf());
        p
    }

    /// The graphroot: `--root`.
    pub fn graphroot(&self) -> PathBuf {
        self.graphroot.clone().unwrap_or_else(|| self.path("root"))
    }

    /// `podman pull` of `reference` from a plain-HTTP registry, with
    /// containers/image's staging directory for blobs (`TMPDIR`) in the
    /// temporary directory, off the graphroot's filesystem.
    pub fn pull(&self, reference: &str) {
        self.pull_staged_in(reference, &self.path("tmp"));
    }

    /// `podman pull` of `reference` from a plain-HTTP registry, blobs
    /// staged in `staging` (CRI-O's `big_files_temporary_dir`).
    pub fn pull_staged_in(&self, reference: &str, staging: &Path) {
        let mut cmd = self.podman();
        cmd.env("TMPDIR", staging).args([
            "pull",
            "--quiet",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ]);
        run_ok(cmd);
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("api.sock")
    }

    /// `unix://…`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn storage(&self, name: &str) -> String {
        format!(
            "containers-storage:[{}@{}+{}]{name}",
            self.driver,
            self.graphroot().display(),
            self.path("runroot").display()
        )
    }

    /// Copies an image of an OCI layout into the store.
    pub fn load(&mut self, layout: &Path, tag: &str, name: &str) {
        let src = SkopeoSource::new(layout, tag).reference;
        self.copy_in(&src, &[], name);
    }

    /// Copies the image skopeo reads at `src` (with `src_flags`, e.g.
    /// `--src-tls-verify=false` for a loopback registry) into the store as
    /// `name`. The first copy falls back to the vfs driver where overlay
    /// cannot mount.
    pub fn copy_in(&mut self, src: &str, src_flags: &[&str], name: &str) {
        let skopeo = require_tool("skopeo", "apt-get install skopeo");
        let copy = |dest: String| {
            Command::new(&skopeo)
                .args(["--insecure-policy", "copy"])
                .args(src_flags)
                .args([src, &dest])
                .output()
                .expect("spawn skopeo")
        };
        let mut out = copy(self.storage(name));
        if !out.status.success()
            && self.driver == "overlay"
            && self.service.is_none()
            && self.graphroot.is_none()
        {
            eprintln!(
                "overlay storage failed, using vfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            self.unmount();
            self.driver = "vfs";
            out = copy(self.storage(name));
        }
        assert!(
            out.status.success(),
            "skopeo copy {src} {}: {}",
            self.storage(name),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `podman` with this store's flags.
    pub fn podman(&self) -> Command {
        let podman = require_tool("podman", "apt-get install podman");
        let mut cmd = Command::new(podman);
        cmd.arg("--root")
            .arg(self.graphroot())
            .arg("--runroot")
            .arg(self.path("runroot"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(["--storage-driver", self.driver])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        cmd
    }

    /// `buildah` over the same store: buildah and podman share
    /// containers-storage, so it sees the images copied in.
    pub fn buildah(&self) -> Command {
        let buildah = require_tool("buildah", "apt-get install buildah");
        let mut cmd = Command::new(buildah);
        cmd.arg("--root")
            .arg(self.graphroot())
            .arg("--runroot")
            .arg(self.path("runroot"))
            .args(["--storage-driver", self.driver])
            .env("TMPDIR", self.path("tmp"));
        cmd
    }

    /// `podman save --format FORMAT -o OUT NAME`.
    pub fn save(&self, format: &str, name: &str, out: &Path) {
        let mut cmd = self.podman();
        cmd.args(["save", "--format", format, "-o"])
            .arg(out)
            .arg(name);
        run_ok(cmd);
    }

    /// `buildah push NAME DEST`.
    pub fn buildah_push(&self, name: &str, dest: &str) {
        let mut cmd = self.buildah();
        cmd.args(["push", "--quiet", name, dest]);
        run_ok(cmd);
    }

    /// Starts `podman system service` on the socket and waits until it
    /// accepts connections.
    pub fn serve(&mut self) {
        let log = std::fs::File::create(self.path("service.log")).unwrap();
        let child = self
            .podman()
            .args(["system", "service", "--time=0", &self.host()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn podman system service");
        self.service = Some(child);
        for _ in 0..300 {
            if UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(status) = self.service.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "podman system service exited ({status}):\n{}",
                    std::fs::read_to_string(self.path("service.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("podman system service did not listen on {}", self.host());
    }

    /// Unmounts every mount under the store, deepest first.
    pub fn unmount(&self) {
        if let Some(g) = &self.graphroot {
            super::imagefs::unmount_below(g);
        }
        let root = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").arg(p).status();
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.unmount();
    }
}

/// Runs `cmd`; panics with its stderr if it fails.
#[track_caller]
fn run_ok(mut cmd: Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
