//! Reading figures out of sizeguard's JSON reports.

use serde_json::Value;

/// The figures of a layer (and of an image's `totals`), in report order;
/// all but the first describe the unpacked tar, whatever its compression
/// or transport.
pub const LAYER_FIGURES: [&str; 8] = [
    "compressed_bytes",
    "tar_bytes",
    "content_bytes",
    "disk_bytes",
    "inodes",
    "whiteouts",
    "opaque_dirs",
    "files",
];

/// A figure that must be an unsigned integer.
#[track_caller]
pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// `actual` is within `pct` percent of `expected` (integer arithmetic: no
/// rounding at the boundary).
pub fn within_pct(actual: u64, expected: u64, pct: u64) -> bool {
    actual.abs_diff(expected) * 100 <= expected * pct
}
