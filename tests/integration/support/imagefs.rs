//! A fresh ext4 filesystem on a loop device, standing in for a node's
//! imageFS: what a runtime really uses on it is read with `statvfs`, the
//! same figures the kubelet's image GC and eviction decide from.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use super::require_tool;

/// One mounted imageFS at a time in this process: each holds a loop device
/// and a few GiB of sparse file, and the runtimes on them compete for the
/// same two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the right to mount an imageFS until dropped. A test that panicked
/// while holding it left nothing behind (every [`ImageFs`] unmounts on
/// drop), so a poisoned lock is taken over.
pub fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Used blocks and inodes of a filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// `(f_blocks − f_bfree) × f_frsize`.
    pub bytes: u64,
    /// `f_files − f_ffree`.
    pub inodes: u64,
}

impl Usage {
    /// What `self` uses beyond `before` (negative when space was freed).
    pub fn since(self, before: Usage) -> (i64, i64) {
        (
            self.bytes as i64 - before.bytes as i64,
            self.inodes as i64 - before.inodes as i64,
        )
    }
}

/// A sparse file formatted ext4 and loop-mounted on a temporary directory.
/// Dropping it unmounts whatever was mounted below it, then it, which
/// detaches the loop device (`-o loop` sets autoclear), and deletes the
/// file, whether the test passed or not.
pub struct ImageFs {
    mountpoint: PathBuf,
    _dir: tempfile::TempDir,
}

impl ImageFs {
    /// A fresh filesystem of `size` bytes (sparse: only what is written
    /// takes space on the host). Panics with one line saying why when this
    /// is not root or loop devices are unavailable: the proof on real
    /// stores is never skipped silently.
    pub fn new(size: u64) -> ImageFs {
        require_root_and_loop_devices();
        let mkfs = require_tool("mkfs.ext4", "apt-get install e2fsprogs");
        let dir = tempfile::Builder::new()
            .prefix("sizeguard-imagefs-")
            .tempdir()
            .expect("create imagefs temp dir");
        let image = dir.path().join("ext4.img");
        let file = std::fs::File::create(&image).expect("create imagefs file");
        file.set_len(size).expect("size imagefs file");
        drop(file);
        run(Command::new(mkfs).args(["-q", "-F"]).arg(&image));
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mountpoint)
            .output()
            .expect("spawn mount");
        assert!(
            out.status.success(),
            "the real-store tests need loop devices: mount -o loop failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        ImageFs {
            mountpoint,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Runs `during` and returns, with its result, the most bytes and the
    /// most inodes used at any point while it ran (sampled every 10 ms;
    /// ext4 counts blocks reserved for delayed writes as used, so no sync
    /// is needed between samples) or once it was done.
    pub fn peak_during<T>(&self, during: impl FnOnce() -> T) -> (T, Usage) {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut peak = Usage::default();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = self.statvfs();
                    peak.bytes = peak.bytes.max(now.bytes);
                    peak.inodes = peak.inodes.max(now.inodes);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                peak
            });
            let out = during();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut peak = sampler.join().expect("statvfs sampler");
            let end = self.usage();
            peak.bytes = peak.bytes.max(end.bytes);
            peak.inodes = peak.inodes.max(end.inodes);
            (out, peak)
        })
    }

    /// Used bytes and inodes once everything written so far is on disk:
    /// ext4 allocates blocks for delayed writes only at writeback, so
    /// without a sync `f_bfree` lags behind what the runtime wrote.
    pub fn usage(&self) -> Usage {
        // SAFETY: `sync` has no preconditions.
        unsafe { libc::sync() };
        self.statvfs()
    }

    fn statvfs(&self) -> Usage {
        let path = CString::new(self.mountpoint.as_os_str().as_bytes()).unwrap();
        // SAFETY: `path` is a valid C string and `st` a properly sized,
        // writable statvfs.
        let st = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            assert_eq!(
                libc::statvfs(path.as_ptr(), &mut st),
                0,
                "statvfs {}: {}",
                self.mountpoint.display(),
                std::io::Error::last_os_error()
            );
            st
        };
        Usage {
            bytes: (st.f_blocks as u64 - st.f_bfree as u64) * st.f_frsize as u64,
            inodes: st.f_files as u64 - st.f_ffree as u64,
        }
    }
}

impl Drop for ImageFs {
    fn drop(&mut self) {
        unmount_below(&self.mountpoint);
        let unmounted = Command::new("umount")
            .arg(&self.mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a runtime's process not yet gone): detach it
            // anyway, so removing the temporary directory next deletes the
            // empty mountpoint and the image file, never the store inside.
            let _ = Command::new("umount")
                .arg("--lazy")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

/// Panics with one line saying what is missing when this process cannot
/// loop-mount a filesystem: the proof on real stores is never skipped
/// silently, and says so before any slow preparation.
pub fn require_root_and_loop_devices() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the real-store tests need root (loop-mounted ext4, containerd, podman); \
         this runs as uid {euid}: run them as root (CI does)"
    );
    require_tool("mount", "apt-get install mount");
    assert!(
        Path::new("/dev/loop-control").exists(),
        "the real-store tests need loop devices and /dev/loop-control is missing \
         (a container without them: run it with --privileged, or on a VM)"
    );
}

/// Unmounts every mount strictly below `root`, deepest first (the
/// runtimes' overlay and tmpfs mounts), so `root` itself can be unmounted.
pub fn unmount_below(root: &Path) {
    let prefix = format!("{}/", root.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg(p).status();
    }
}

/// Runs `cmd`; panics with its stderr if it fails. Returns its stdout.
#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where the bytes and inodes under a directory went, grouped by a key
/// the caller derives from each path (relative to the root): a runtime's
/// store walked so a mismatch with the model can be read as "which part".
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub inodes: u64,
    /// Σ `st_blocks × 512`, each inode once.
    pub allocated: u64,
    /// Σ `st_size`, each inode once (`du --apparent-size`).
    pub apparent: u64,
}

/// Walks `root` (not crossing into other filesystems) and tallies every
/// inode, hard links once, under `group(relative path)`.
pub fn breakdown(
    root: &Path,
    group: &dyn Fn(&Path) -> String,
) -> std::collections::BTreeMap<String, Tally> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::<String, Tally>::new();
    let mut seen = std::collections::HashSet::new();
    let Ok(top) = std::fs::symlink_metadata(root) else {
        return out;
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != top.dev() {
            continue;
        }
        if seen.insert(meta.ino()) {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let t = out.entry(group(rel)).or_default();
            t.inodes += 1;
            t.allocated += meta.blocks() * 512;
            t.apparent += meta.size();
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    out
}

/// A breakdown as aligned text, with its totals.
pub fn breakdown_table(groups: &std::collections::BTreeMap<String, Tally>) -> String {
    let mut s = format!(
        "{:<58} {:>8} {:>14} {:>14}\n",
        "where", "inodes", "allocated", "apparent"
    );
    let mut total = Tally::default();
    for (k, t) in groups {
        s.push_str(&format!(
            "{k:<58} {:>8} {:>14} {:>14}\n",
            t.inodes, t.allocated, t.apparent
        ));
        total.inodes += t.inodes;
        total.allocated += t.allocated;
        total.apparent += t.apparent;
    }
    s.push_str(&format!(
        "{:<58} {:>8} {:>14} {:>14}\n",
        "(walked total)", total.inodes, total.allocated, total.apparent
    ));
    s
}
