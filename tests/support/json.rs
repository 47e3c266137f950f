//! Reading figures out of sizeguard's JSON reports.

use serde_json::Value;

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
