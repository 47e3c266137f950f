//! Byte quantities: binary units for humans, plain integers for machines.
//! Every size a person types (flags, `sizeguard.toml`) and every size a
//! report prints goes through here, so the two spellings agree everywhere.

use crate::error::Error;

/// `1536` → `1.5 KiB`; exact below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// Signed variant for growth figures: `+612 MiB`, `-3.00 KiB`.
pub fn human_delta(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        human_bytes(n.unsigned_abs().min(u64::MAX as u128) as u64)
    )
}

/// A headroom that may be negative (already crossed): `-3.00 KiB`, or
/// `612 MiB` without a sign when there is room.
pub fn human_signed(v: i128) -> String {
    if v < 0 {
        human_delta(v)
    } else {
        human_bytes(v.min(u64::MAX as i128) as u64)
    }
}

/// Parses a byte quantity in Kubernetes syntax (`20Gi`, `500M`, `1.5Gi`,
/// `1e9`) or with a `B` suffix (`20GiB`, `500MB`, `100B`). A size that
/// does not parse is a usage error: a person wrote it.
pub fn parse_bytes(s: &str) -> Result<u64, Error> {
    let t = s.trim();
    let err = || {
        Error::usage(format!(
            "invalid size {s:?}: expected e.g. 20Gi, 500MiB, 1G or a number of bytes"
        ))
    };
    let split = t
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
        })
        .unwrap_or(t.len());
    // `1e9` is a number, but `1Ei` is a unit: only treat e/E as part of the
    // number when digits follow.
    let (mut num, mut suffix) = t.split_at(split);
    if let Some(i) = num.find(['e', 'E'])
        && !num[i + 1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '-')
    {
        (num, suffix) = t.split_at(i);
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    if !value.is_finite() || value < 0.0 {
        return Err(err());
    }
    let suffix = suffix.trim();
    let suffix = suffix
        .strip_suffix('B')
        .filter(|s| !s.is_empty() || suffix == "B")
        .unwrap_or(suffix);
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return Err(err()),
    };
    let bytes = (value * mult).round();
    if bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(612 * 1024 * 1024), "612 MiB");
        assert_eq!(human_delta(-2048), "-2.00 KiB");
        assert_eq!(human_signed(-2048), "-2.00 KiB");
        assert_eq!(human_signed(2048), "2.00 KiB");
    }

    #[test]
    fn parse() {
        assert_eq!(parse_bytes("20Gi").unwrap(), 20 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("20GiB").unwrap(), 20 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("1e9").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("1.5Ki").unwrap(), 1536);
        assert_eq!(parse_bytes("100B").unwrap(), 100);
        assert_eq!(parse_bytes("12345").unwrap(), 12345);
        assert_eq!(parse_bytes("2Ei").unwrap(), 2 * 1024u64.pow(6));
        let e = parse_bytes("12X").unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.to_string().starts_with("invalid size \"12X\""), "{e}");
        assert!(parse_bytes("-1Gi").is_err());
        assert!(parse_bytes("").is_err());
    }
}
