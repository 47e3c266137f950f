//! A private containerd (its root on a given directory, its socket and
//! state in a temporary one) and `ctr` against it, as a node's runtime
//! without the CRI plugin: images pulled into namespace `k8s.io` and
//! unpacked by the overlayfs snapshotter, as the CRI plugin does.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::imagefs::{run, unmount_below};
use super::require_tool;

/// The namespace the CRI plugin keeps Kubernetes' images in.
pub const NAMESPACE: &str = "k8s.io";

pub struct Containerd {
    root: PathBuf,
    state: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    /// Starts containerd with its root at `root` and waits until it
    /// answers on its socket.
    pub fn start(root: &Path) -> Containerd {
        let bin = require_tool("containerd", "apt-get install containerd");
        require_tool("ctr", "apt-get install containerd");
        let state = tempfile::Builder::new()
            .prefix("sizeguard-containerd-")
            .tempdir()
            .expect("create containerd state dir");
        let socket = state.path().join("containerd.sock");
        // The garbage collector runs right after each deletion, so
        // removing a blob frees its file before the next measurement
        // (the default waits for 100 mutations).
        let config = format!(
            "version = 2\n\
             root = {root:?}\n\
             state = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {socket:?}\n\
             [plugins.\"io.containerd.gc.v1.scheduler\"]\n  \
               deletion_threshold = 1\n  schedule_delay = \"0s\"\n",
            root = root.display().to_string(),
            state = state.path().join("state").display().to_string(),
            socket = socket.display().to_string(),
        );
        let config_path = state.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(state.path().join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let mut c = Containerd {
            root: root.to_path_buf(),
            state,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if UnixStream::connect(c.socket()).is_ok()
                && c.ctr()
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                break;
            }
            if let Some(status) = c.child.try_wait().unwrap() {
                panic!("containerd exited ({status}):\n{}", c.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30 s:\n{}",
                c.socket().display(),
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn socket(&self) -> PathBuf {
        self.state.path().join("containerd.sock")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET --namespace k8s.io`.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(require_tool("ctr", "apt-get install containerd"));
        cmd.arg("--address")
            .arg(self.socket())
            .args(["--namespace", NAMESPACE]);
        cmd
    }

    /// Pulls and unpacks `reference` (`127.0.0.1:PORT/REPO:TAG`, plain
    /// HTTP) for linux/amd64, as the CRI plugin does.
    pub fn pull(&self, reference: &str) {
        run(self.ctr().args([
            "images",
            "pull",
            "--plain-http",
            "--platform",
            "linux/amd64",
            reference,
        ]));
    }

    /// Digests of every blob in the content store.
    pub fn content(&self) -> Vec<String> {
        run(self.ctr().args(["content", "ls", "--quiet"]))
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Removes blobs from the content store and waits until the garbage
    /// collector has deleted their files: what `discard_unpacked_layers`
    /// leaves once a pull's lease is gone.
    pub fn remove_blobs(&self, digests: &[String]) {
        if digests.is_empty() {
            return;
        }
        run(self.ctr().args(["content", "rm"]).args(digests));
        let blob = |d: &String| {
            self.root
                .join("io.containerd.content.v1.content/blobs")
                .join(d.replacen(':', "/", 1))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while digests.iter().any(|d| blob(d).exists()) {
            assert!(
                Instant::now() < deadline,
                "containerd kept removed blobs on disk for 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_below(&self.root);
        unmount_below(self.state.path());
    }
}
