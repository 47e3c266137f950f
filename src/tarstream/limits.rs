//! The limits every tar sizeguard reads is held to: a layer's, and the
//! outer tar of an `oci-archive:`, a `docker-archive:` or an engine's
//! export. One set, enforced by one reader ([`super`]) while the
//! bytes stream past, so that a crafted archive is refused before it is
//! held, whatever reads it.
//!
//! The name limits are the kernel's: containerd creates every member with
//! the path the archive gives (under the snapshot's root, so with even
//! less room), and Linux refuses a path of `PATH_MAX` bytes or more, NUL
//! included, and a component longer than `NAME_MAX`. A layer past them
//! could never be unpacked on a node; refusing it costs no real image and
//! bounds what one name may hold to 4 KiB instead of the 1 MiB a metadata
//! record may carry.
//!
//! The totals bound what the per-path index (and the merged view over
//! every layer) keeps: about 100 bytes per member (a million empty files
//! peak at about 90 MiB) plus the names' bytes.

use std::sync::atomic::{AtomicU64, Ordering};

/// The longest member name: Linux's `PATH_MAX` (4096) less its NUL.
/// Counted as the archive writes it.
pub const MAX_PATH_BYTES: usize = 4095;

/// The longest component of a member name (or of a hard link's target):
/// Linux's `NAME_MAX`.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// The longest link target: `symlink(2)` and `link(2)` refuse a target of
/// `PATH_MAX` bytes or more, NUL included.
pub const MAX_LINK_BYTES: usize = 4095;

/// The longest metadata record (PAX `x`/`g`, GNU `L`/`K`). Go's
/// `archive/tar` refuses longer ones (`maxSpecialFileSize = 1 << 20` in
/// `src/archive/tar/format.go`, read by `readSpecialFile` in `reader.go`;
/// libarchive uses the same limit), so containerd could not unpack a layer
/// holding one anyway. A PAX header also carries extended attributes
/// (SELinux labels, file capabilities, ACLs: tens to hundreds of bytes),
/// so it gets the whole of it; a name inside it is still held to
/// [`MAX_PATH_BYTES`].
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The most members one layer (or one outer archive) may have. The largest
/// real layers hold about a million (a monorepo's `node_modules`, a full
/// TeX Live is 200 000); four times that, each a node's inode, is past
/// what the image filesystem of most nodes has (ext4 makes one inode per
/// 16 KiB: 4 million is a 64 GiB disk of nothing else). At about 100
/// bytes of index per member, 400 MiB.
pub const MAX_LAYER_MEMBERS: u64 = 4_000_000;

/// The most distinct paths one layer's index may hold, the directories a
/// member's name implies included: each is an inode once unpacked (the
/// same bound as [`MAX_LAYER_MEMBERS`]), and without it a few thousand
/// members 2 000 components deep would make millions.
pub const MAX_LAYER_PATHS: u64 = 4_000_000;

/// The most bytes of member names and link targets one layer may have.
/// Real names average well under 100 bytes, so this is 4 million members
/// of 64 bytes, or a million of 256; the index keeps at most this much of
/// name bytes (distinct components only).
pub const MAX_LAYER_NAME_BYTES: u64 = 256 << 20;

/// The most bytes of PAX headers one layer may have. Nothing of a header
/// is kept past its member, so this bounds parsing time, not memory: a
/// gzip stream of a 1 MiB header is 1 KiB, and each header is scanned
/// several times. Real headers are 30 to a few hundred bytes (times, a
/// label, a capability), so 1 GiB is over 250 bytes for each of the
/// [`MAX_LAYER_MEMBERS`].
pub const MAX_LAYER_PAX_BYTES: u64 = 1 << 30;

/// What one measurement (a `measure`, a `check`, a `serve` validation)
/// may hold over all the layers it streams: the merged view keeps every
/// layer's index at once, so the layer limits alone would let an image of
/// many layers each just under them take their sum. Twice a layer's: an
/// image with a second layer as large as the largest real one still fits.
pub const MAX_JOB_MEMBERS: u64 = 2 * MAX_LAYER_MEMBERS;
pub const MAX_JOB_PATHS: u64 = 2 * MAX_LAYER_PATHS;
pub const MAX_JOB_NAME_BYTES: u64 = 2 * MAX_LAYER_NAME_BYTES;
pub const MAX_JOB_PAX_BYTES: u64 = 2 * MAX_LAYER_PAX_BYTES;

/// What the layers of one measurement have used so far, shared by the
/// layers streaming at once.
#[derive(Debug, Default)]
pub struct JobBudget {
    members: AtomicU64,
    paths: AtomicU64,
    name_bytes: AtomicU64,
    pax_bytes: AtomicU64,
}

/// What a tar stream holds that is counted against the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Members,
    Paths,
    NameBytes,
    PaxBytes,
}

impl Counted {
    fn limits(self) -> (u64, u64) {
        match self {
            Counted::Members => (MAX_LAYER_MEMBERS, MAX_JOB_MEMBERS),
            Counted::Paths => (MAX_LAYER_PATHS, MAX_JOB_PATHS),
            Counted::NameBytes => (MAX_LAYER_NAME_BYTES, MAX_JOB_NAME_BYTES),
            Counted::PaxBytes => (MAX_LAYER_PAX_BYTES, MAX_JOB_PAX_BYTES),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Counted::Members => "members",
            Counted::Paths => "distinct paths (directories included)",
            Counted::NameBytes => "bytes of member names and link targets",
            Counted::PaxBytes => "bytes of PAX headers",
        }
    }
}

impl JobBudget {
    /// Counts `n` more of `what` for the whole measurement.
    pub fn charge(&self, what: Counted, n: u64) -> Result<(), String> {
        let limit = what.limits().1;
        let shared = match what {
            Counted::Members => &self.members,
            Counted::Paths => &self.paths,
            Counted::NameBytes => &self.name_bytes,
            Counted::PaxBytes => &self.pax_bytes,
        };
        let total = shared.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if total > limit {
            return Err(format!(
                "the layers of this measurement hold more than {limit} {}, \
                 the limit for one measurement",
                what.noun()
            ));
        }
        Ok(())
    }
}

/// One archive's use of the limits, and the job's it adds to.
#[derive(Debug, Default)]
pub struct Budget {
    members: u64,
    paths: u64,
    name_bytes: u64,
    pax_bytes: u64,
    job: Option<std::sync::Arc<JobBudget>>,
}

impl Budget {
    pub fn new(job: Option<std::sync::Arc<JobBudget>>) -> Self {
        Budget {
            job,
            ..Budget::default()
        }
    }

    /// Counts `n` more of `what`; the error says which limit it passed.
    pub fn charge(&mut self, what: Counted, n: u64) -> Result<(), String> {
        let own = what.limits().0;
        let mine = match what {
            Counted::Members => &mut self.members,
            Counted::Paths => &mut self.paths,
            Counted::NameBytes => &mut self.name_bytes,
            Counted::PaxBytes => &mut self.pax_bytes,
        };
        *mine = mine.saturating_add(n);
        if *mine > own {
            return Err(format!(
                "more than {own} {} in one archive, the limit for a layer",
                what.noun()
            ));
        }
        match &self.job {
            Some(job) => job.charge(what, n),
            None => Ok(()),
        }
    }
}

/// Why a member name (or a hard link's target) cannot exist on a node.
pub fn check_path(path: &[u8], what: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "{what} of {} bytes is over the {MAX_PATH_BYTES}-byte path limit \
             (Linux's PATH_MAX: containerd could not create it)",
            path.len()
        ));
    }
    if let Some(c) = path
        .split(|&b| b == b'/')
        .find(|c| c.len() > MAX_COMPONENT_BYTES)
    {
        return Err(format!(
            "{what} has a component of {} bytes, over the {MAX_COMPONENT_BYTES}-byte \
             limit (Linux's NAME_MAX: containerd could not create it)",
            c.len()
        ));
    }
    Ok(())
}

/// Why a symlink's target cannot exist on a node.
pub fn check_link(target: &[u8]) -> Result<(), String> {
    if target.len() > MAX_LINK_BYTES {
        return Err(format!(
            "a link target of {} bytes is over the {MAX_LINK_BYTES}-byte limit \
             (Linux's PATH_MAX: containerd could not create it)",
            target.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_at_the_limits_pass_and_one_byte_more_does_not() {
        let component = "c".repeat(MAX_COMPONENT_BYTES);
        assert!(check_path(component.as_bytes(), "name").is_ok());
        let long = format!("{component}x");
        let e = check_path(long.as_bytes(), "name").unwrap_err();
        assert!(e.contains("component of 256 bytes"), "{e}");
        // 4095 bytes of components of 255 and slashes.
        let mut path = Vec::new();
        while path.len() + 256 <= MAX_PATH_BYTES {
            path.extend_from_slice(component.as_bytes());
            path.push(b'/');
        }
        path.resize(MAX_PATH_BYTES, b'f');
        assert!(check_path(&path, "name").is_ok());
        path.push(b'f');
        let e = check_path(&path, "name").unwrap_err();
        assert!(
            e.contains("4096 bytes") && e.contains("4095-byte path limit"),
            "{e}"
        );
        assert!(check_link(&[b'a'; MAX_LINK_BYTES]).is_ok());
        assert!(check_link(&[b'a'; MAX_LINK_BYTES + 1]).is_err());
    }

    #[test]
    fn a_job_budget_is_shared_and_a_layer_budget_is_not() {
        let job = std::sync::Arc::new(JobBudget::default());
        let mut a = Budget::new(Some(job.clone()));
        let mut b = Budget::new(Some(job.clone()));
        a.charge(Counted::Members, MAX_LAYER_MEMBERS).unwrap();
        let e = a.charge(Counted::Members, 1).unwrap_err();
        assert!(e.contains("the limit for a layer"), "{e}");
        // The refused member counted for the layer only.
        b.charge(Counted::Members, MAX_LAYER_MEMBERS).unwrap();
        let mut c = Budget::new(Some(job.clone()));
        let e = c.charge(Counted::Members, 1).unwrap_err();
        assert!(e.contains("the limit for one measurement"), "{e}");
        let mut alone = Budget::new(None);
        alone
            .charge(Counted::NameBytes, MAX_LAYER_NAME_BYTES)
            .unwrap();
        assert!(alone.charge(Counted::NameBytes, 1).is_err());
    }
}
