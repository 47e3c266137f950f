//! A throwaway PostgreSQL cluster per test, from Debian's `postgresql`
//! package: `initdb` into a temporary directory, `pg_ctl start` on a free
//! loopback port (TCP on 127.0.0.1 only, its Unix socket inside the
//! directory), stopped and removed on drop.
//!
//! `initdb` refuses to run as root. When the tests run as root, every
//! PostgreSQL command runs as the unprivileged system user
//! [`TEST_USER`] through `runuser`, and the temporary directory is handed
//! to that user; `scripts/install-deps.sh` creates the user. Authentication
//! is `trust` on loopback: nothing but this machine can reach the port.

#![cfg(feature = "server")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::registry::free_port;

/// The system user the cluster runs as when the tests run as root.
pub const TEST_USER: &str = "sizeguard-test";

pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    null: Option<PathBuf>,
    pub port: u16,
}

/// The newest installed server's `bin/` directory, or a panic saying how
/// to install it.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's initdb/pg_ctl not found under /usr/lib/postgresql/*/bin; \
             install it with: apt-get install postgresql (or run scripts/install-deps.sh)"
        )
    })
}

fn is_root() -> bool {
    // The effective uid as the kernel reports it; no libc binding needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `program args...`, as [`TEST_USER`] when running as root. `null` is
/// a null device node to use when the machine's `/dev/null` is not one
/// (see [`null_device`]).
fn as_test_user(program: &Path, null: Option<&Path>) -> Command {
    if !is_root() {
        return Command::new(program);
    }
    let runuser = crate::support::require_tool("runuser", "apt-get install util-linux");
    match null {
        None => {
            let mut c = Command::new(runuser);
            c.arg("-u").arg(TEST_USER).arg("--").arg(program);
            c
        }
        Some(node) => {
            // A private mount namespace: the bind mount is seen by
            // PostgreSQL's processes only, the machine's /dev is untouched.
            let mut c = Command::new(crate::support::require_tool(
                "unshare",
                "apt-get install util-linux",
            ));
            c.args(["--mount", "sh", "-c"])
                .arg(
                    "mount --bind \"$0\" /dev/null && r=\"$1\" u=\"$2\" && shift 2 \
                     && exec \"$r\" -u \"$u\" -- \"$@\"",
                )
                .arg(node)
                .arg(runuser)
                .arg(TEST_USER)
                .arg(program);
            c
        }
    }
}

/// PostgreSQL's tools redirect to and from `/dev/null`. Some sandboxes
/// leave it a root-only regular file; then a real null device node is
/// made in `dir` for [`as_test_user`] to mount over it.
fn null_device(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let fine = std::fs::metadata("/dev/null").is_ok_and(|m| m.file_type().is_char_device());
    if fine || !is_root() {
        return None;
    }
    let node = dir.join("null");
    let mut mknod = Command::new("mknod");
    mknod.arg(&node).args(["c", "1", "3"]);
    run(mknod, "mknod (a null device for PostgreSQL)");
    let mut chmod = Command::new("chmod");
    chmod.arg("666").arg(&node);
    run(chmod, "chmod the null device");
    Some(node)
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The uid and gid of [`TEST_USER`], from /etc/passwd.
fn test_user_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&TEST_USER) {
                return None;
            }
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root and initdb refuses root: create the user with \
                 `useradd --system --no-create-home {TEST_USER}` (scripts/install-deps.sh does)"
            )
        })
}

impl Postgres {
    /// Initialises and starts a cluster; panics with the server log if it
    /// does not come up.
    pub fn start() -> Postgres {
        let bin = server_bin();
        let dir = tempfile::Builder::new()
            .prefix("sizeguard-pg-")
            .tempdir()
            .expect("temporary directory");
        if is_root() {
            let (uid, gid) = test_user_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the directory to the test user");
        }
        let null = null_device(dir.path());
        let data = dir.path().join("data");
        let mut init = as_test_user(&bin.join("initdb"), null.as_deref());
        init.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C");
        run(init, "initdb");
        // A port free now may be taken before the server binds it: retry.
        for attempt in 0..3 {
            let port = free_port();
            let out = pg_ctl_start(&bin, null.as_deref(), dir.path(), port);
            if out.status.success() {
                return Postgres {
                    dir,
                    bin,
                    null,
                    port,
                };
            }
            if attempt == 2 {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!(
                    "pg_ctl start failed: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    log
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        unreachable!()
    }

    /// Stops the server (fast shutdown: connections are closed), keeping
    /// its data for [`Postgres::start_again`].
    pub fn stop(&self) {
        let mut stop = as_test_user(&self.bin.join("pg_ctl"), self.null.as_deref());
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(stop, "pg_ctl stop");
    }

    /// Starts a stopped server again on the same port and data.
    pub fn start_again(&self) {
        let out = pg_ctl_start(&self.bin, self.null.as_deref(), self.dir.path(), self.port);
        assert!(
            out.status.success(),
            "pg_ctl start (again) failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// A new empty database; returns its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = as_test_user(&self.bin.join("createdb"), self.null.as_deref());
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]);
        run(c, "createdb");
        self.url(name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_test_user(&self.bin.join("pg_ctl"), self.null.as_deref());
        stop.arg("-D").arg(self.dir.path().join("data")).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        ]);
        let _ = stop.output();
        // The directory itself goes with `dir` (TempDir's Drop).
    }
}

/// `pg_ctl start` of the cluster in `dir` on `port`, waiting until it
/// accepts connections.
fn pg_ctl_start(bin: &Path, null: Option<&Path>, dir: &Path, port: u16) -> std::process::Output {
    let mut start = as_test_user(&bin.join("pg_ctl"), null);
    start
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
             -c max_connections=200",
            dir.display()
        ))
        .args(["-w", "-t", "60", "start"]);
    start.output().expect("pg_ctl start")
}
