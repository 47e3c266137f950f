//! Checks shared by the sender parsers. Every value that leaves a parser
//! in a [`super::Push`] has passed one of these: event bodies come from the
//! network, and the fields end up in queue rows, log lines, metric labels
//! and registry requests.

use serde_json::Value;

use crate::digest::Digest;
use crate::error::Error;

/// Most events one delivery may carry. Distribution batches a few events
/// per envelope; Harbor and GitHub send one. A thousand is generous for
/// every real sender and keeps a hostile body from becoming a flood of
/// queue rows.
pub const MAX_EVENTS: usize = 1000;

/// Deepest JSON nesting accepted. The deepest real payload (GitHub's
/// `package` event) nests about eight levels; serde_json's own limit is
/// 128, which still lets a small body cost a deep recursion.
pub const MAX_DEPTH: usize = 32;

/// Longest event id kept; ids are UUIDs or short composites.
const MAX_ID_LEN: usize = 256;

/// Distribution's limit on a repository name.
const MAX_REPOSITORY_LEN: usize = 255;

/// A DNS name's limit plus `:65535`, or a bracketed IPv6 literal.
const MAX_HOST_LEN: usize = 260;

/// Parses a JSON body after checking its nesting depth; anything that is
/// not a JSON object is a malformed delivery.
pub fn parse_object(body: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, Error> {
    check_depth(body, what)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::usage(format!("{what}: body is not JSON")).with_source(e))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::usage(format!("{what}: body is not a JSON object"))),
    }
}

/// Refuses bodies nested deeper than [`MAX_DEPTH`] before any parsing.
/// Brackets inside strings do not count; escapes inside strings are
/// skipped so that `"\""` does not end a string early.
fn check_depth(body: &[u8], what: &str) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Error::usage(format!(
                        "{what}: JSON nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The string at a path of object keys, if every step exists and the
/// last is a non-empty string.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

/// An event id as a sender wrote it: printable ASCII, bounded.
pub fn event_id(s: &str) -> Option<String> {
    let ok = !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_string())
}

/// A digest as events carry it; `None` when it is not one sizeguard can
/// verify (the event is then ignored as invalid, not the whole delivery).
pub fn digest(s: &str) -> Option<Digest> {
    Digest::parse(s).ok()
}

/// A repository path by the distribution grammar, simplified: lowercase
/// components of `[a-z0-9]` joined by `.`, `_`, `-`, separated by `/`.
/// Refusing everything else keeps `..`, empty components, spaces and
/// control characters out of registry paths and logs.
pub fn repository(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > MAX_REPOSITORY_LEN {
        return None;
    }
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    s.split('/').all(component_ok).then(|| s.to_string())
}

/// A tag by the distribution grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn tag(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-');
    ok.then(|| s.to_string())
}

/// `host[:port]`, lower-cased: a DNS name, an IPv4 literal or a bracketed
/// IPv6 literal, and an optional decimal port. No user info, path or
/// whitespace can pass, so the result is safe to compare with the
/// configured allow-list and to put in a reference.
pub fn host_port(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > MAX_HOST_LEN {
        return None;
    }
    let s = s.to_ascii_lowercase();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ipv6_ok = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6_ok {
            return None;
        }
        match after {
            "" => (&s[..inner.len() + 2], None),
            p => (&s[..inner.len() + 2], Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s.as_str(), None),
        }
    };
    if !host.starts_with('[') {
        let dns_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !dns_ok {
            return None;
        }
    }
    if let Some(p) = port {
        let port_ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !port_ok {
            return None;
        }
    }
    Some(s)
}

/// The `host[:port]` of an absolute `http://` or `https://` URL, as the
/// URL writes it (an explicit default port is kept, so `registry:443`
/// still matches an allow-list entry that names it). `None` for relative
/// URLs, other schemes, and anything with user info.
pub fn url_host_port(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return None;
    }
    host_port(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            host_port("Registry.Example.com:5000").unwrap(),
            "registry.example.com:5000"
        );
        assert_eq!(host_port("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(host_port("[::1]:5000").unwrap(), "[::1]:5000");
        assert_eq!(host_port("[::1]").unwrap(), "[::1]");
        assert_eq!(host_port("ghcr.io").unwrap(), "ghcr.io");
        for bad in [
            "",
            "user@host",
            "host:0",
            "host:65536",
            "host:",
            "host:80:80",
            "ho st",
            "host/path",
            "-host",
            "a..b",
            "[::1]x",
            "[zz]",
            "host:8o",
        ] {
            assert_eq!(host_port(bad), None, "{bad:?}");
        }
        assert_eq!(
            url_host_port("https://Reg.example:443/v2/a/manifests/x").unwrap(),
            "reg.example:443"
        );
        assert_eq!(
            url_host_port("http://10.0.0.1:5000").unwrap(),
            "10.0.0.1:5000"
        );
        assert_eq!(url_host_port("/v2/a/manifests/x"), None);
        assert_eq!(url_host_port("ftp://reg/v2"), None);
        assert_eq!(url_host_port("https://u:p@reg/v2"), None);
    }

    #[test]
    fn repositories_and_tags() {
        for good in [
            "a",
            "team/app",
            "library/hello-world",
            "a.b_c-d/e__f",
            "0/1",
        ] {
            assert_eq!(repository(good).as_deref(), Some(good));
        }
        for bad in [
            "", "Team/app", "a//b", "/a", "a/", "../a", "a/..", "a b", "-a", "a-",
        ] {
            assert_eq!(repository(bad), None, "{bad:?}");
        }
        assert!(repository(&"a".repeat(256)).is_none());
        for good in ["latest", "v1.2.3", "_x", "A-b.c"] {
            assert_eq!(tag(good).as_deref(), Some(good));
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b"] {
            assert_eq!(tag(bad), None, "{bad:?}");
        }
        assert!(tag(&"a".repeat(129)).is_none());
    }

    #[test]
    fn depth_is_bounded_outside_strings_only() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse_object(deep.as_bytes(), "t").is_err());
        let in_string = format!("{{\"k\": \"{}\\\"\"}}", "[".repeat(1000));
        assert!(parse_object(in_string.as_bytes(), "t").is_ok());
        assert!(parse_object(b"[1]", "t").is_err());
        assert!(parse_object(b"{", "t").is_err());
    }
}
