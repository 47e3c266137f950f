//! Quantities a person types and reads: bytes (binary units for humans,
//! plain integers for machines) and durations (Go's spelling, as `--timeout`
//! takes them). Every size or duration a flag or `sizeguard.toml` takes and
//! every one a report or a message prints goes through here, so the two
//! spellings agree everywhere.

use std::time::Duration;

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

/// `10m0s`, `1h2m3s`, `45s`, `1.5s`, `250ms`: Go's spelling, which
/// `--timeout` accepts too.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let frac = d.subsec_millis();
    let s = secs % 60;
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (secs / 3600, secs / 60 % 60) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `--timeout`: a sequence of numbers with units (`ms`, `s`, `m`, `h`), as
/// in `90s`, `10m`, `1h30m`; a bare number is seconds. Zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::usage(format!(
            "invalid duration {s:?}: expected e.g. 90s, 10m or 1h30m"
        ))
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return positive(Duration::from_secs(secs), s);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let part = Duration::try_from_secs_f64(value * scale).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = next;
    }
    positive(total, s)
}

fn positive(d: Duration, s: &str) -> Result<Duration, Error> {
    if d.is_zero() {
        return Err(Error::usage(format!(
            "--timeout {s:?}: must be more than 0"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_like_go() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "0", "0s", "ten", "5d", "m", "-1s", "1.2.3s"] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::Usage, "{bad}: {e}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m0s");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
    }

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
