//! A node's image filesystem as the kubelet judges it: how many more bytes
//! of images can land before image garbage collection or disk-pressure
//! eviction starts.
//!
//! The point of this module is to reproduce the kubelet's *arithmetic*, not
//! an idealised version of it. The kubelet decides with truncating integer
//! division (image GC) and with a `float32` percentage turned into a
//! truncated byte count (eviction); a pleasant-looking "15 %" computed in
//! exact arithmetic would be off by a percent (GC) or by a few hundred
//! bytes (eviction) from what actually happens on the node, and an answer
//! like "this image fits" has to hold at the last byte.
//!
//! Everything here is pure: figures come in as numbers, flags or JSON text.
//! Bad thresholds, sizes and percentages are usage errors (a person wrote
//! them); a stats summary that cannot be read is corrupt input.

use serde::Deserialize;

use crate::error::Error;
use crate::units::parse_bytes;

/// The kubelet settings that turn disk usage into action.
///
/// Defaults are the kubelet's own: `imageGCHighThresholdPercent: 85`,
/// `imageGCLowThresholdPercent: 80`, and the Linux hard eviction thresholds
/// `imagefs.available<15%` and `imagefs.inodesFree<5%`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize, schemars::JsonSchema)]
pub struct Thresholds {
    /// `imageGCHighThresholdPercent`. 100 disables threshold-driven GC, as
    /// in the kubelet.
    #[schemars(range(max = 100))]
    pub gc_high: u8,
    /// `imageGCLowThresholdPercent`: where GC frees down to.
    #[schemars(range(max = 100))]
    pub gc_low: u8,
    /// `evictionHard["imagefs.available"]` in percent (15.0 for `15%`).
    /// 0 and 100 mean "no threshold", as the kubelet reads `0%` and `100%`.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub eviction_available_pct: f64,
    /// `evictionHard["imagefs.inodesFree"]` in percent, same conventions.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub eviction_inodes_free_pct: f64,
    /// `imageMaximumGCAge` in seconds: an unused image (a replaced
    /// baseline) is removed after this long whatever the usage; null when
    /// not given (the kubelet's default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_maximum_gc_age_seconds: Option<u64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            gc_high: 85,
            gc_low: 80,
            eviction_available_pct: 15.0,
            eviction_inodes_free_pct: 5.0,
            image_maximum_gc_age_seconds: None,
        }
    }
}

impl Thresholds {
    /// Rejects settings the kubelet would refuse to start with, so that a
    /// headroom is never computed for a configuration no node can have.
    /// Messages name the kubelet field and flag the user will recognise.
    pub fn validate(&self) -> Result<(), Error> {
        if self.gc_high > 100 {
            return Err(Error::usage(format!(
                "imageGCHighThresholdPercent (--image-gc-high-threshold) {} must be between 0 and 100, inclusive",
                self.gc_high
            )));
        }
        if self.gc_low > 100 {
            return Err(Error::usage(format!(
                "imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be between 0 and 100, inclusive",
                self.gc_low
            )));
        }
        if self.gc_low >= self.gc_high {
            return Err(Error::usage(format!(
                "imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}",
                self.gc_low, self.gc_high
            )));
        }
        for (name, v) in [
            ("imagefs.available", self.eviction_available_pct),
            ("imagefs.inodesFree", self.eviction_inodes_free_pct),
        ] {
            if !v.is_finite() || !(0.0..=100.0).contains(&v) {
                return Err(Error::usage(format!(
                    "eviction threshold {name} {v}% must be between 0% and 100%"
                )));
            }
        }
        Ok(())
    }
}

/// Parses an eviction percentage as written in kubelet configuration
/// (`15%`) or as a bare number (`15`, `7.5`), returning percent units.
///
/// Bounds are the kubelet's (0 to 100 inclusive); anything the kubelet
/// would refuse is refused here rather than silently clamped.
pub fn parse_percent(s: &str) -> Result<f64, Error> {
    let err = || {
        Error::usage(format!(
            "invalid percentage {s:?}: expected e.g. 15% or 7.5"
        ))
    };
    let t = s.trim();
    let num = t.strip_suffix('%').unwrap_or(t).trim();
    if num.is_empty() {
        return Err(err());
    }
    let v: f64 = num.parse().map_err(|_| err())?;
    if !v.is_finite() {
        return Err(err());
    }
    if v < 0.0 {
        return Err(Error::usage(format!(
            "invalid percentage {s:?}: must be >= 0%"
        )));
    }
    if v > 100.0 {
        return Err(Error::usage(format!(
            "invalid percentage {s:?}: must be <= 100%"
        )));
    }
    Ok(v)
}

/// One node's image filesystem, as the kubelet's stats report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFs {
    pub name: String,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// Total inodes, when the filesystem reports them (some do not).
    pub inodes: Option<u64>,
    pub inodes_free: Option<u64>,
    /// The kubelet's `containerFs` when it is not the imageFS (a split
    /// image filesystem, KEP-4191): writable layers live there, so the
    /// image rules do not judge it; reports show it.
    pub container_fs: Option<ContainerFs>,
}

/// A split image filesystem's other half: where the containers' writable
/// layers live.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ContainerFs {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// A node whose image filesystem has no capacity cannot be judged; the
/// figures came from the user (flags) or were already checked (stats).
fn zero_capacity() -> Error {
    Error::usage("invalid capacity 0 on image filesystem")
}

/// The kubelet's image-GC usage figure: `100 - int(available*100/capacity)`.
///
/// The truncating division is the whole story: the percentage of space
/// *available* is rounded down, so usage is rounded up. A disk that is
/// 84.01 % full already reports 85 and triggers GC at the default
/// threshold. Like the kubelet, available is clamped to capacity first
/// (stats can briefly disagree), and a capacity of 0 is an error rather
/// than a division by zero (the kubelet raises `InvalidDiskCapacity`).
/// Arithmetic is done in 128 bits, so no real disk size can overflow it
/// (the kubelet's int64 would overflow past ~92 PB of available space).
pub fn usage_percent(capacity: u64, available: u64) -> Result<i64, Error> {
    if capacity == 0 {
        return Err(zero_capacity());
    }
    let available = available.min(capacity) as u128;
    let free_pct = available * 100 / capacity as u128;
    Ok(100 - free_pct as i64)
}

/// How far a node is from the kubelet acting on its image filesystem.
///
/// Byte figures are signed: negative means the line is already crossed by
/// that many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// The kubelet's [`usage_percent`] right now.
    pub usage_percent: i64,
    /// Bytes that can land on the image filesystem with image GC still not
    /// triggered (see [`gc_headroom_bytes`]).
    pub gc_headroom: i128,
    /// Bytes that can land with the `imagefs.available` hard eviction
    /// threshold still not met (see [`eviction_threshold`]).
    pub eviction_headroom: i128,
    /// Inodes (files and directories, not bytes) that can be created with
    /// the `imagefs.inodesFree` threshold still not met; `None` when the
    /// filesystem does not report inodes.
    pub inode_headroom: Option<i128>,
    /// The next GC pass will run (or GC is running now): usage is already
    /// at or over the high threshold.
    pub gc_already_triggered: bool,
}

/// The largest number of bytes that can land on the image filesystem while
/// the kubelet's usage stays strictly below `gc_high`.
///
/// Because usage is `100 - floor(avail*100/C)`, "usage < H" is
/// `floor(avail*100/C) >= 101 - H`, i.e. `avail >= ceil((101-H)*C/100)`.
/// So the GC line is **not** at `(100-H) %` available but one percent
/// higher: with the default H=85, GC starts as soon as available drops
/// below 16 % of capacity, not 15 %. The result may be negative (already
/// over). Available is clamped to capacity as the kubelet does. This is
/// the raw formula: it does not know that the kubelet disables GC when
/// `gc_high` is 100 ([`headroom`] does).
pub fn gc_headroom_bytes(capacity: u64, available: u64, gc_high: u8) -> Result<i128, Error> {
    if capacity == 0 {
        return Err(zero_capacity());
    }
    if gc_high > 100 {
        return Err(Error::usage(format!(
            "image GC high threshold {gc_high}% must be between 0 and 100"
        )));
    }
    let c = capacity as u128;
    let a = available.min(capacity) as i128;
    let need = (101 - gc_high as u128) * c;
    let min_available = need.div_ceil(100);
    Ok(a - min_available as i128)
}

/// The kubelet's `amountToFree` once GC has triggered:
/// `capacity*int64(100-low)/100 - available`, in its integer order of
/// operations (multiply, then truncate), with available clamped to
/// capacity first as the kubelet does.
///
/// Because the division truncates, the target is
/// `available = floor(C*(100-low)/100)`, which the usage formula can still
/// read as a point above `low`. The figure is only meaningful when
/// [`usage_percent`] is at or over the high threshold; below it the
/// kubelet never computes it, and it may come out negative.
pub fn gc_amount_to_free(capacity: u64, available: u64, gc_low: u8) -> i128 {
    let c = capacity as i128;
    let a = available.min(capacity) as i128;
    c * (100 - gc_low as i128) / 100 - a
}

/// The byte (or inode) count under which the kubelet's percentage eviction
/// threshold is met: `available < eviction_threshold(capacity, pct)`.
///
/// Reproduces the kubelet bit for bit rather than computing an exact
/// `pct %` of capacity: the kubelet parses the percentage into a `float32`
/// (`float32(15)/100` = 0.150000006...), multiplies the capacity by it in
/// `float64`, and truncates to an integer. The float32 error makes the
/// threshold slightly *higher* than the exact figure (128 bytes on a
/// 20 GiB disk at 15 %), so an exact-rational answer would overstate the
/// headroom. 0 % and 100 % are the kubelet's spellings of "no threshold";
/// both return 0 (never met).
pub fn eviction_threshold(capacity: u64, pct: f64) -> u64 {
    if pct <= 0.0 || pct >= 100.0 || !pct.is_finite() {
        return 0;
    }
    let fraction: f32 = (pct as f32) / 100.0f32;
    // `as` truncates toward zero like Go's int64(float64), and saturates
    // instead of wrapping on absurd inputs.
    ((capacity as f64) * f64::from(fraction)) as u64
}

/// Headroom against an eviction threshold: the kubelet evicts when
/// `threshold > available`, so landing exactly `available - threshold`
/// leaves it at the threshold, not under it.
fn eviction_headroom_of(capacity: u64, available: u64, pct: f64) -> i128 {
    available as i128 - eviction_threshold(capacity, pct) as i128
}

/// Everything the kubelet will decide about `fs` under `t`, as distances.
///
/// GC with `gc_high` = 100 is disabled in the kubelet, so its headroom is
/// then all available space and it is never triggered.
pub fn headroom(fs: &NodeFs, t: &Thresholds) -> Result<Headroom, Error> {
    t.validate()?;
    let usage = usage_percent(fs.capacity_bytes, fs.available_bytes)
        .map_err(|e| e.context(format!("node {:?}", fs.name)))?;
    let (gc_headroom, gc_already_triggered) = if t.gc_high == 100 {
        (fs.available_bytes as i128, false)
    } else {
        let h = gc_headroom_bytes(fs.capacity_bytes, fs.available_bytes, t.gc_high)
            .map_err(|e| e.context(format!("node {:?}", fs.name)))?;
        (h, usage >= t.gc_high as i64)
    };
    let eviction_headroom = eviction_headroom_of(
        fs.capacity_bytes,
        fs.available_bytes,
        t.eviction_available_pct,
    );
    let inode_headroom = match (fs.inodes, fs.inodes_free) {
        (Some(total), Some(free)) => Some(eviction_headroom_of(
            total,
            free,
            t.eviction_inodes_free_pct,
        )),
        _ => None,
    };
    Ok(Headroom {
        usage_percent: usage,
        gc_headroom,
        eviction_headroom,
        inode_headroom,
        gc_already_triggered,
    })
}

/// The node with the least room before GC (ties: least room before
/// eviction), with its headroom. The tightest node decides whether an image
/// "fits the fleet", since a pod can be scheduled onto any of them.
pub fn tightest(nodes: &[NodeFs], t: &Thresholds) -> Result<(usize, Headroom), Error> {
    let mut best: Option<(usize, Headroom)> = None;
    for (i, fs) in nodes.iter().enumerate() {
        let h = headroom(fs, t)?;
        let better = match &best {
            None => true,
            Some((_, b)) => {
                (h.gc_headroom, h.eviction_headroom) < (b.gc_headroom, b.eviction_headroom)
            }
        };
        if better {
            best = Some((i, h));
        }
    }
    best.ok_or_else(|| Error::usage("no nodes to compare"))
}

#[derive(Deserialize)]
struct Summary {
    node: Option<SummaryNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryNode {
    node_name: Option<String>,
    fs: Option<FsStats>,
    runtime: Option<RuntimeStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeStats {
    image_fs: Option<FsStats>,
    container_fs: Option<FsStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsStats {
    available_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    inodes_free: Option<u64>,
    inodes: Option<u64>,
}

/// Reads the kubelet's `/stats/summary` (one object, or a JSON array of
/// them for several nodes) into image filesystems.
///
/// `node.runtime.imageFs` is what the kubelet's image GC and imagefs
/// eviction look at; when the runtime reports no separate image filesystem
/// the summary omits it and images live on `node.fs`, so that is the
/// fallback. An imageFs that is present but incomplete is an error rather
/// than a fallback: the kubelet itself would not fall back either.
/// Nodes without a `nodeName` are called `node-1`, `node-2`… by position.
pub fn parse_stats_summary(json: &[u8]) -> Result<Vec<NodeFs>, Error> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| Error::corrupt("kubelet stats summary is not valid JSON").with_source(e))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        _ => {
            return Err(Error::corrupt(
                "kubelet stats summary must be a JSON object or an array of them",
            ));
        }
    };
    if items.is_empty() {
        return Err(Error::corrupt("kubelet stats summary array is empty"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| node_from_summary(i + 1, item))
        .collect()
}

fn node_from_summary(position: usize, item: serde_json::Value) -> Result<NodeFs, Error> {
    let summary: Summary = crate::go_json::from_value(item)
        .map_err(|e| Error::corrupt(format!("kubelet stats summary #{position}")).with_source(e))?;
    let node = summary.node.ok_or_else(|| {
        Error::corrupt(format!(
            "kubelet stats summary #{position} has no \"node\" field (expected the output of /api/v1/nodes/NODE/proxy/stats/summary)"
        ))
    })?;
    let name = node
        .node_name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("node-{position}"));
    let (image_fs, container_fs) = match node.runtime {
        Some(r) => (r.image_fs, r.container_fs),
        None => (None, None),
    };
    // The kubelet reports containerFs equal to imageFs unless the runtime
    // splits them; only a filesystem of other figures is a split.
    let container_fs = container_fs.and_then(|c| {
        let split = image_fs.as_ref().is_some_and(|i| {
            (i.capacity_bytes, i.available_bytes) != (c.capacity_bytes, c.available_bytes)
        });
        match (split, c.capacity_bytes, c.available_bytes) {
            (true, Some(capacity_bytes), Some(available_bytes))
                if available_bytes <= capacity_bytes =>
            {
                Some(ContainerFs {
                    capacity_bytes,
                    available_bytes,
                })
            }
            _ => None,
        }
    });
    let (fs, source) = match image_fs {
        Some(fs) => (fs, "node.runtime.imageFs"),
        None => match node.fs {
            Some(fs) => (fs, "node.fs"),
            None => {
                return Err(Error::corrupt(format!(
                    "node {name:?}: stats summary has neither node.runtime.imageFs nor node.fs"
                )));
            }
        },
    };
    let capacity_bytes = fs
        .capacity_bytes
        .ok_or_else(|| Error::corrupt(format!("node {name:?}: {source} has no capacityBytes")))?;
    let available_bytes = fs
        .available_bytes
        .ok_or_else(|| Error::corrupt(format!("node {name:?}: {source} has no availableBytes")))?;
    if capacity_bytes == 0 {
        return Err(Error::corrupt(format!(
            "node {name:?}: {source} reports a capacity of 0"
        )));
    }
    check_free_within_total(available_bytes, capacity_bytes, fs.inodes, fs.inodes_free)
        .map_err(|e| e.context(format!("node {name:?}: {source}")))?;
    Ok(NodeFs {
        name,
        capacity_bytes,
        available_bytes,
        inodes: fs.inodes,
        inodes_free: fs.inodes_free,
        container_fs,
    })
}

/// No filesystem has more free than it holds: the flags and a stats
/// summary are held to this alike, in the same words (and both are the
/// user's input, so a usage error).
fn check_free_within_total(
    available: u64,
    capacity: u64,
    inodes: Option<u64>,
    inodes_free: Option<u64>,
) -> Result<(), Error> {
    if available > capacity {
        return Err(Error::usage(format!(
            "available space {available} bytes exceeds capacity {capacity} bytes"
        )));
    }
    match (inodes, inodes_free) {
        (Some(total), Some(free)) if free > total => Err(Error::usage(format!(
            "free inodes {free} exceed total inodes {total}"
        ))),
        _ => Ok(()),
    }
}

/// Builds a node from command-line figures, for when there is no cluster
/// to ask. Space can be given as available or as used (what `df` shows),
/// but not both: they would have to agree, and on a real filesystem they
/// need not (reserved blocks), so the model takes one source of truth.
pub fn from_flags(
    capacity: &str,
    available: Option<&str>,
    used: Option<&str>,
    inodes: Option<u64>,
    inodes_free: Option<u64>,
) -> Result<NodeFs, Error> {
    let capacity_bytes = parse_bytes(capacity).map_err(|e| e.context("capacity"))?;
    if capacity_bytes == 0 {
        return Err(Error::usage("capacity must be greater than 0"));
    }
    let available_bytes = match (available, used) {
        (Some(_), Some(_)) => {
            return Err(Error::usage(
                "give either available or used space, not both",
            ));
        }
        (None, None) => return Err(Error::usage("give the available or the used space")),
        (Some(a), None) => parse_bytes(a).map_err(|e| e.context("available"))?,
        (None, Some(u)) => {
            let u = parse_bytes(u).map_err(|e| e.context("used"))?;
            if u > capacity_bytes {
                return Err(Error::usage(format!(
                    "used space {u} bytes exceeds capacity {capacity_bytes} bytes"
                )));
            }
            capacity_bytes - u
        }
    };
    check_free_within_total(available_bytes, capacity_bytes, inodes, inodes_free)?;
    match (inodes, inodes_free) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::usage(
                "give both the total and the free inode counts, or neither",
            ));
        }
        _ => {}
    }
    Ok(NodeFs {
        name: "node".to_string(),
        capacity_bytes,
        available_bytes,
        inodes,
        inodes_free,
        container_fs: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    /// A real node's `/stats/summary`, trimmed to the fields that matter.
    const REAL_SUMMARY: &str = r#"{
      "node": {
        "nodeName": "worker-1",
        "fs": {"time": "2024-05-01T10:00:00Z", "availableBytes": 1000, "capacityBytes": 2000,
               "usedBytes": 1000, "inodesFree": 10, "inodes": 20, "inodesUsed": 10},
        "runtime": {
          "imageFs": {"time": "2024-05-01T10:00:00Z",
                      "availableBytes": 17310752768, "capacityBytes": 21462233088,
                      "usedBytes": 1291296768, "inodesFree": 10375082,
                      "inodes": 10484720, "inodesUsed": 109638}
        }
      },
      "pods": []
    }"#;

    fn real_node() -> NodeFs {
        NodeFs {
            name: "worker-1".into(),
            capacity_bytes: 21_462_233_088,
            available_bytes: 17_310_752_768,
            inodes: Some(10_484_720),
            inodes_free: Some(10_375_082),
            container_fs: None,
        }
    }

    /// The kubelet's eviction test: threshold > available.
    fn eviction_met(capacity: u64, available: i128, pct: f64) -> bool {
        (eviction_threshold(capacity, pct) as i128) > available
    }

    #[test]
    fn defaults_are_kubelets() {
        let t = Thresholds::default();
        assert_eq!((t.gc_high, t.gc_low), (85, 80));
        assert_eq!(t.eviction_available_pct, 15.0);
        assert_eq!(t.eviction_inodes_free_pct, 5.0);
        t.validate().unwrap();
    }

    #[test]
    fn validate_mirrors_kubelet() {
        let ok = |h, l| Thresholds {
            gc_high: h,
            gc_low: l,
            ..Thresholds::default()
        };
        ok(100, 0).validate().unwrap();
        ok(1, 0).validate().unwrap();
        let e = ok(80, 80).validate().unwrap_err().one_line();
        assert!(
            e.contains("must be less than imageGCHighThresholdPercent"),
            "{e}"
        );
        assert!(ok(80, 85).validate().is_err());
        assert!(
            ok(101, 80)
                .validate()
                .unwrap_err()
                .one_line()
                .contains("between 0 and 100")
        );
        assert!(ok(100, 101).validate().is_err());
        for bad in [-1.0, 100.5, f64::NAN, f64::INFINITY] {
            let t = Thresholds {
                eviction_available_pct: bad,
                ..Thresholds::default()
            };
            assert!(t.validate().is_err(), "{bad}");
            let t = Thresholds {
                eviction_inodes_free_pct: bad,
                ..Thresholds::default()
            };
            assert!(t.validate().is_err(), "{bad}");
        }
        for fine in [0.0, 7.5, 100.0] {
            let t = Thresholds {
                eviction_available_pct: fine,
                ..Thresholds::default()
            };
            t.validate().unwrap();
        }
        // Errors are one line.
        assert!(!ok(80, 90).validate().unwrap_err().one_line().contains('\n'));
        assert_eq!(ok(80, 90).validate().unwrap_err().kind(), Kind::Usage);
    }

    #[test]
    fn percent_parsing() {
        assert_eq!(parse_percent("15%").unwrap(), 15.0);
        assert_eq!(parse_percent("15").unwrap(), 15.0);
        assert_eq!(parse_percent("7.5%").unwrap(), 7.5);
        assert_eq!(parse_percent(" 5 % ").unwrap(), 5.0);
        assert_eq!(parse_percent("0%").unwrap(), 0.0);
        assert_eq!(parse_percent("100%").unwrap(), 100.0);
        for bad in [
            "", "%", "abc", "15%%", "-1%", "100.1%", "1e3", "NaN", "inf", "15Gi", "%15",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_percent("-5")
                .unwrap_err()
                .one_line()
                .contains(">= 0%")
        );
        assert!(
            parse_percent("150%")
                .unwrap_err()
                .one_line()
                .contains("<= 100%")
        );
    }

    #[test]
    fn usage_is_kubelets_integer_formula() {
        assert_eq!(usage_percent(1000, 600).unwrap(), 40);
        assert_eq!(usage_percent(1000, 50).unwrap(), 95);
        assert_eq!(usage_percent(1000, 10).unwrap(), 99);
        assert_eq!(usage_percent(1000, 0).unwrap(), 100);
        assert_eq!(usage_percent(1000, 1000).unwrap(), 0);
        // Truncation rounds usage up: 84.01 % used reports 85.
        assert_eq!(usage_percent(10_000, 1599).unwrap(), 85);
        assert_eq!(usage_percent(10_000, 1600).unwrap(), 84);
        // Available above capacity is clamped, as in the kubelet.
        assert_eq!(usage_percent(1000, 5000).unwrap(), 0);
        assert!(
            usage_percent(0, 0)
                .unwrap_err()
                .one_line()
                .contains("invalid capacity 0")
        );
        // No overflow at the extremes.
        assert_eq!(usage_percent(u64::MAX, u64::MAX).unwrap(), 0);
        assert_eq!(usage_percent(u64::MAX, 0).unwrap(), 100);
    }

    #[test]
    fn real_node_vector() {
        let fs = real_node();
        let h = headroom(&fs, &Thresholds::default()).unwrap();
        assert_eq!(h.usage_percent, 20);
        // ceil(16 * 21462233088 / 100) = 3433957295; 17310752768 - that.
        assert_eq!(h.gc_headroom, 13_876_795_473);
        assert!(!h.gc_already_triggered);
        // Landing exactly the headroom keeps usage at 84; one more byte is 85.
        let a = fs.available_bytes - h.gc_headroom as u64;
        assert_eq!(a, 3_433_957_295);
        assert_eq!(usage_percent(fs.capacity_bytes, a).unwrap(), 84);
        assert_eq!(usage_percent(fs.capacity_bytes, a - 1).unwrap(), 85);

        // Eviction: float32(15)/100 * capacity, truncated, is 127.8 bytes
        // above the exact 15 % (3219334963.2).
        let thr = eviction_threshold(fs.capacity_bytes, 15.0);
        assert_eq!(thr, 3_219_335_091);
        assert_eq!(h.eviction_headroom, 17_310_752_768 - 3_219_335_091);
        assert_eq!(h.eviction_headroom, 14_091_417_677);
        assert!(!eviction_met(fs.capacity_bytes, thr as i128, 15.0));
        assert!(eviction_met(fs.capacity_bytes, thr as i128 - 1, 15.0));

        // Inodes: 5 % of 10484720 is 524236 (the float32 excess is < 1).
        assert_eq!(eviction_threshold(10_484_720, 5.0), 524_236);
        assert_eq!(h.inode_headroom, Some(10_375_082 - 524_236));
        assert_eq!(h.inode_headroom, Some(9_850_846));
    }

    #[test]
    fn gc_line_is_sixteen_percent_at_default() {
        // At H=85 the node is still fine with exactly 16 % available and GC
        // triggers one byte below it, long before 15 %.
        let c = 100_000u64;
        assert_eq!(gc_headroom_bytes(c, 16_000, 85).unwrap(), 0);
        assert_eq!(usage_percent(c, 16_000).unwrap(), 84);
        assert_eq!(usage_percent(c, 15_999).unwrap(), 85);
        assert_eq!(gc_headroom_bytes(c, 15_000, 85).unwrap(), -1000);
        let h = headroom(
            &NodeFs {
                name: "n".into(),
                capacity_bytes: c,
                available_bytes: 15_500,
                inodes: None,
                inodes_free: None,
                container_fs: None,
            },
            &Thresholds::default(),
        )
        .unwrap();
        assert!(h.gc_already_triggered);
        assert_eq!(h.gc_headroom, -500);
        assert_eq!(h.inode_headroom, None);
        // Eviction is still 500 bytes away (15 % of 100000, float32 excess
        // truncated away).
        assert_eq!(h.eviction_headroom, 500);
    }

    #[test]
    fn gc_headroom_brute_force() {
        let mut capacities: Vec<u64> = (1..=300).collect();
        capacities.extend([997, 1000, 1001, 4096, 12_345, 99_999]);
        for &c in &capacities {
            let step = (c / 150).max(1);
            let mut avails: Vec<u64> = (0..=c).step_by(step as usize).collect();
            avails.push(c);
            for &a in &avails {
                for h in 1..=100u8 {
                    let g = gc_headroom_bytes(c, a, h).unwrap();
                    let usage = usage_percent(c, a).unwrap();
                    // Negative headroom exactly when GC already triggers.
                    assert_eq!(g < 0, usage >= h as i64, "C={c} A={a} H={h} g={g}");
                    if g >= 0 {
                        let landed = a - g as u64;
                        assert!(
                            usage_percent(c, landed).unwrap() < h as i64,
                            "C={c} A={a} H={h} g={g}"
                        );
                        // One byte more crosses (there is always a byte left:
                        // the GC line needs at least ceil(C/100) >= 1).
                        assert!(landed >= 1);
                        assert!(
                            usage_percent(c, landed - 1).unwrap() >= h as i64,
                            "C={c} A={a} H={h} g={g}"
                        );
                    } else {
                        // Over by exactly -g: freeing that much gets back under.
                        let freed = a + (-g) as u64;
                        assert!(usage_percent(c, freed).unwrap() < h as i64);
                        assert!(usage_percent(c, freed - 1).unwrap() >= h as i64);
                    }
                }
            }
        }
    }

    #[test]
    fn gc_headroom_h_zero_always_triggered() {
        // High 0 is valid config: usage >= 0 always holds, so GC always runs.
        for (c, a) in [(1, 1), (100, 100), (1000, 0)] {
            assert!(gc_headroom_bytes(c, a, 0).unwrap() < 0);
        }
        assert!(gc_headroom_bytes(0, 0, 85).is_err());
        assert!(gc_headroom_bytes(100, 50, 101).is_err());
        assert!(gc_headroom_bytes(100, 50, 255).is_err());
    }

    #[test]
    fn gc_headroom_clamps_available() {
        // Stats saying available > capacity are treated as a full-free disk.
        assert_eq!(
            gc_headroom_bytes(1000, 5000, 85).unwrap(),
            gc_headroom_bytes(1000, 1000, 85).unwrap()
        );
        assert_eq!(gc_headroom_bytes(1000, 1000, 85).unwrap(), 840);
    }

    #[test]
    fn gc_headroom_huge_capacity_no_overflow() {
        let c = u64::MAX;
        let g = gc_headroom_bytes(c, c, 85).unwrap();
        let expected = c as i128 - (16 * c as u128).div_ceil(100) as i128;
        assert_eq!(g, expected);
        let landed = c - g as u64;
        assert_eq!(usage_percent(c, landed).unwrap(), 84);
        assert_eq!(usage_percent(c, landed - 1).unwrap(), 85);
    }

    #[test]
    fn gc_disabled_at_100() {
        let t = Thresholds {
            gc_high: 100,
            gc_low: 80,
            ..Thresholds::default()
        };
        let fs = NodeFs {
            name: "full".into(),
            capacity_bytes: 1000,
            available_bytes: 0,
            inodes: None,
            inodes_free: None,
            container_fs: None,
        };
        let h = headroom(&fs, &t).unwrap();
        assert_eq!(h.usage_percent, 100);
        assert!(!h.gc_already_triggered);
        assert_eq!(h.gc_headroom, 0);
        // The raw formula still says "over" for a nearly full disk.
        assert!(gc_headroom_bytes(1000, 0, 100).unwrap() < 0);
    }

    #[test]
    fn kubelet_gc_manager_vectors() {
        // TestGarbageCollectBelowLowThreshold: 40 % used, high 90: no GC.
        assert_eq!(usage_percent(1000, 600).unwrap(), 40);
        assert!(usage_percent(1000, 600).unwrap() < 90);
        assert_eq!(gc_headroom_bytes(1000, 600, 90).unwrap(), 600 - 110);
        // TestGarbageCollectBelowSuccess / NotEnoughFreed: available 50 of
        // 1000 is 95 %, over high 90; low 80 makes amountToFree 150, so a
        // 450-byte image suffices and a 50-byte one does not.
        assert_eq!(usage_percent(1000, 50).unwrap(), 95);
        assert!(gc_headroom_bytes(1000, 50, 90).unwrap() < 0);
        assert_eq!(gc_amount_to_free(1000, 50, 80), 150);
        assert!(450 >= gc_amount_to_free(1000, 50, 80));
        assert!(50 < gc_amount_to_free(1000, 50, 80));
        // Same formula at available 10.
        assert_eq!(usage_percent(1000, 10).unwrap(), 99);
        assert_eq!(gc_amount_to_free(1000, 10, 80), 190);
        // Integer truncation of capacity*(100-low)/100.
        assert_eq!(gc_amount_to_free(999, 0, 80), 199);
        assert_eq!(gc_amount_to_free(1001, 0, 80), 200);
        // Clamped like the kubelet; negative below the low line.
        assert_eq!(gc_amount_to_free(1000, 5000, 80), -800);
        assert_eq!(gc_amount_to_free(1000, 600, 80), -400);
    }

    #[test]
    fn gc_amount_brings_usage_to_low_or_below() {
        for c in 1..=400u64 {
            for a in 0..=c {
                for low in [0u8, 1, 50, 79, 80, 99] {
                    let free = gc_amount_to_free(c, a, low);
                    if free > 0 {
                        // GC aims at exactly the truncated low-water mark...
                        let after = a + free as u64;
                        assert_eq!(after, c * (100 - low as u64) / 100);
                        // ...which, once the disk is big enough for a byte to
                        // be under 1 %, is within a point of `low`.
                        if c >= 100 {
                            assert!(usage_percent(c, after).unwrap() <= low as i64 + 1);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn eviction_threshold_matches_kubelet_float32() {
        // Exact 15 % of 1000 is 150; float32 0.15 is 0.150000006, times
        // 1000 truncates to 150.
        assert_eq!(eviction_threshold(1000, 15.0), 150);
        assert_eq!(eviction_threshold(100, 15.0), 15);
        // 7.5 % of 1000 = 75.
        assert_eq!(eviction_threshold(1000, 7.5), 75);
        // 10 %: float32(10)/100 = 0.1 rounded to float32 = 0.100000001490116,
        // so the threshold on 10^9 bytes is 100000001 (1 byte over exact).
        assert_eq!(eviction_threshold(1_000_000_000, 10.0), 100_000_001);
        // 0 % and 100 % are "no threshold".
        assert_eq!(eviction_threshold(1000, 0.0), 0);
        assert_eq!(eviction_threshold(1000, 100.0), 0);
        // Always within a hair of the exact value, never far below it.
        for c in [1u64, 7, 999, 1 << 30, 21_462_233_088, 1 << 50] {
            for pct in [1.0, 5.0, 7.5, 10.0, 15.0, 33.3, 99.0] {
                let thr = eviction_threshold(c, pct) as f64;
                let exact = c as f64 * pct / 100.0;
                assert!((thr - exact).abs() <= 1.0 + exact * 1e-7, "C={c} pct={pct}");
            }
        }
    }

    #[test]
    fn eviction_headroom_boundary() {
        for c in [1u64, 99, 100, 1000, 12_345, 21_462_233_088] {
            for a in [0, c / 7, c / 2, c] {
                for pct in [1.0, 5.0, 15.0, 50.0] {
                    let h = eviction_headroom_of(c, a, pct);
                    let after = a as i128 - h;
                    assert!(!eviction_met(c, after, pct), "C={c} A={a} pct={pct}");
                    assert!(eviction_met(c, after - 1, pct), "C={c} A={a} pct={pct}");
                }
            }
        }
        // Disabled threshold: every available byte is headroom.
        assert_eq!(eviction_headroom_of(1000, 300, 0.0), 300);
        assert_eq!(eviction_headroom_of(1000, 300, 100.0), 300);
        // Already under: negative.
        assert_eq!(eviction_headroom_of(1000, 100, 15.0), -50);
    }

    #[test]
    fn headroom_rejects_bad_input() {
        let mut fs = real_node();
        let bad = Thresholds {
            gc_high: 80,
            gc_low: 85,
            ..Thresholds::default()
        };
        assert!(headroom(&fs, &bad).is_err());
        fs.capacity_bytes = 0;
        let e = headroom(&fs, &Thresholds::default())
            .unwrap_err()
            .one_line();
        assert!(e.contains("worker-1") && e.contains("capacity 0"), "{e}");
    }

    #[test]
    fn a_split_image_filesystem_keeps_its_container_fs() {
        let split = br#"{"node": {"nodeName": "crio-1", "runtime": {
            "imageFs": {"capacityBytes": 1000, "availableBytes": 400},
            "containerFs": {"capacityBytes": 500, "availableBytes": 450}}}}"#;
        let n = &parse_stats_summary(split).unwrap()[0];
        assert_eq!(n.available_bytes, 400);
        assert_eq!(
            n.container_fs,
            Some(ContainerFs {
                capacity_bytes: 500,
                available_bytes: 450
            })
        );
        // Not split: the kubelet reports the same filesystem twice.
        let same = br#"{"node": {"nodeName": "c-1", "runtime": {
            "imageFs": {"capacityBytes": 1000, "availableBytes": 400},
            "containerFs": {"capacityBytes": 1000, "availableBytes": 400}}}}"#;
        assert_eq!(parse_stats_summary(same).unwrap()[0].container_fs, None);
    }

    #[test]
    fn parse_real_summary() {
        let nodes = parse_stats_summary(REAL_SUMMARY.as_bytes()).unwrap();
        assert_eq!(nodes, vec![real_node()]);
    }

    #[test]
    fn parse_array_and_fallback_to_node_fs() {
        let json = r#"[
          {"node": {"nodeName": "a", "runtime": {"imageFs": {"capacityBytes": 1000, "availableBytes": 400}}}},
          {"node": {"fs": {"capacityBytes": 2000, "availableBytes": 1500, "inodes": 10, "inodesFree": 9},
                    "runtime": {}}},
          {"node": {"nodeName": "", "fs": {"capacityBytes": 3000, "availableBytes": 3000}, "runtime": {"imageFs": null}}}
        ]"#;
        let nodes = parse_stats_summary(json.as_bytes()).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].name, "a");
        assert_eq!(nodes[0].capacity_bytes, 1000);
        assert_eq!(nodes[0].inodes, None);
        assert_eq!(nodes[1].name, "node-2");
        assert_eq!(nodes[1].available_bytes, 1500);
        assert_eq!((nodes[1].inodes, nodes[1].inodes_free), (Some(10), Some(9)));
        assert_eq!(nodes[2].name, "node-3");
        assert_eq!(nodes[2].capacity_bytes, 3000);
    }

    #[test]
    fn parse_errors_name_the_node() {
        let e = parse_stats_summary(
            br#"{"node": {"nodeName": "w9", "runtime": {"imageFs": {"availableBytes": 5}}}}"#,
        )
        .unwrap_err()
        .one_line();
        assert!(e.contains("w9") && e.contains("capacityBytes"), "{e}");
        assert!(e.contains("node.runtime.imageFs"), "{e}");
        let e = parse_stats_summary(br#"{"node": {"nodeName": "w9", "fs": {"capacityBytes": 5}}}"#)
            .unwrap_err()
            .one_line();
        assert!(
            e.contains("w9") && e.contains("availableBytes") && e.contains("node.fs"),
            "{e}"
        );
        let e = parse_stats_summary(br#"{"node": {"nodeName": "w9"}}"#)
            .unwrap_err()
            .one_line();
        assert!(e.contains("w9") && e.contains("neither"), "{e}");
        let e = parse_stats_summary(
            br#"{"node": {"nodeName": "z", "fs": {"capacityBytes": 0, "availableBytes": 0}}}"#,
        )
        .unwrap_err()
        .one_line();
        assert!(e.contains("\"z\"") && e.contains("capacity of 0"), "{e}");
        // More free than there is: refused in the words the flags get.
        let flags = from_flags("1000", Some("1001"), None, None, None)
            .unwrap_err()
            .one_line();
        let e = parse_stats_summary(
            br#"{"node": {"nodeName": "z", "runtime": {"imageFs": {"capacityBytes": 1000, "availableBytes": 1001}}}}"#,
        )
        .unwrap_err();
        assert!(e.one_line().ends_with(&flags), "{e} / {flags}");
        assert_eq!(e.kind(), Kind::Usage);
        let flags = from_flags("1000", Some("10"), None, Some(5), Some(6))
            .unwrap_err()
            .one_line();
        let e = parse_stats_summary(
            br#"{"node": {"fs": {"capacityBytes": 1000, "availableBytes": 10, "inodes": 5, "inodesFree": 6}}}"#,
        )
        .unwrap_err()
        .one_line();
        assert!(
            e.contains("node.fs") && e.ends_with(&flags),
            "{e} / {flags}"
        );
        // Names by position when nodeName is missing.
        let e = parse_stats_summary(
            br#"[{"node": {"fs": {"capacityBytes": 1, "availableBytes": 1}}}, {"node": {"fs": {}}}]"#,
        )
        .unwrap_err().one_line();
        assert!(e.contains("node-2"), "{e}");
        for bad in [
            &b"not json"[..],
            b"[]",
            b"42",
            b"{}",
            br#"{"node": {"fs": {"capacityBytes": -1, "availableBytes": 1}}}"#,
            br#"{"node": {"fs": {"capacityBytes": "1Gi", "availableBytes": 1}}}"#,
        ] {
            let e = parse_stats_summary(bad).unwrap_err().one_line();
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(
            parse_stats_summary(b"not json").unwrap_err().kind(),
            Kind::Corrupt
        );
        assert!(
            parse_stats_summary(b"{}")
                .unwrap_err()
                .one_line()
                .contains("no \"node\" field")
        );
    }

    #[test]
    fn tightest_picks_least_gc_room_then_eviction() {
        let n = |name: &str, c, a| NodeFs {
            name: name.into(),
            capacity_bytes: c,
            available_bytes: a,
            inodes: None,
            inodes_free: None,
            container_fs: None,
        };
        let t = Thresholds::default();
        let nodes = vec![
            n("roomy", 100_000, 90_000),
            n("tight", 100_000, 20_000),
            n("middle", 100_000, 50_000),
        ];
        let (i, h) = tightest(&nodes, &t).unwrap();
        assert_eq!(i, 1);
        assert_eq!(h.gc_headroom, 4_000);

        // Equal GC headroom, different eviction headroom: a bigger disk at
        // the same GC distance has its eviction line further away.
        // C=1000,A=200: gc=200-160=40, evict=200-150=50.
        // C=100, A=56:  gc=56-16=40,   evict=56-15=41.
        let nodes = vec![n("big", 1000, 200), n("small", 100, 56)];
        let (i, h) = tightest(&nodes, &t).unwrap();
        assert_eq!((i, h.gc_headroom, h.eviction_headroom), (1, 40, 41));
        // First wins a full tie.
        let nodes = vec![n("x", 1000, 200), n("y", 1000, 200)];
        assert_eq!(tightest(&nodes, &t).unwrap().0, 0);

        assert!(tightest(&[], &t).is_err());
        let e = tightest(&[n("ok", 10, 5), n("broken", 0, 0)], &t)
            .unwrap_err()
            .one_line();
        assert!(e.contains("broken"), "{e}");
    }

    #[test]
    fn flags() {
        let fs = from_flags("20Gi", Some("16Gi"), None, None, None).unwrap();
        assert_eq!(fs.name, "node");
        assert_eq!(fs.capacity_bytes, 20 << 30);
        assert_eq!(fs.available_bytes, 16 << 30);
        let fs = from_flags("1G", None, Some("250MB"), Some(100), Some(40)).unwrap();
        assert_eq!(fs.available_bytes, 750_000_000);
        assert_eq!((fs.inodes, fs.inodes_free), (Some(100), Some(40)));
        let fs = from_flags("1000", None, Some("1000"), None, None).unwrap();
        assert_eq!(fs.available_bytes, 0);

        let err = |c, a, u, i, f| from_flags(c, a, u, i, f).unwrap_err().one_line();
        assert!(err("1G", Some("1"), Some("1"), None, None).contains("not both"));
        assert!(err("1G", None, None, None, None).contains("available or the used"));
        assert!(err("1G", None, Some("2G"), None, None).contains("exceeds capacity"));
        assert!(err("1G", Some("2G"), None, None, None).contains("exceeds capacity"));
        assert!(err("0", Some("0"), None, None, None).contains("greater than 0"));
        assert!(err("lots", Some("1"), None, None, None).starts_with("capacity:"));
        assert!(err("1G", Some("x"), None, None, None).starts_with("available:"));
        assert!(err("1G", None, Some("x"), None, None).starts_with("used:"));
        assert!(err("1G", Some("1"), None, Some(10), Some(11)).contains("exceed total"));
        assert!(err("1G", Some("1"), None, Some(10), None).contains("both"));
        assert!(err("1G", Some("1"), None, None, Some(10)).contains("both"));
        let e = from_flags("lots", Some("1"), None, None, None).unwrap_err();
        assert_eq!(e.kind(), Kind::Usage);
    }

    #[test]
    fn flags_feed_headroom() {
        let fs = from_flags(
            "21462233088",
            Some("17310752768"),
            None,
            Some(10_484_720),
            Some(10_375_082),
        )
        .unwrap();
        let h = headroom(&fs, &Thresholds::default()).unwrap();
        assert_eq!(h.gc_headroom, 13_876_795_473);
        assert_eq!(h.eviction_headroom, 14_091_417_677);
        assert_eq!(h.inode_headroom, Some(9_850_846));
    }
}
