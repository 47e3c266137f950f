//! Where a registry's answers may send sizeguard: the one place that
//! decides which addresses a request for a registry may reach besides the
//! registry itself.
//!
//! A registry names other hosts in two ways: a redirect (a blob store's
//! signed URL) and the `realm` of its token service. Both come from the
//! registry, which may be hostile or compromised, and sizeguard often runs
//! inside a cluster or a CI runner where an address can reach what the
//! registry cannot: the cloud's instance metadata service (credentials of
//! the node), the host's loopback services, the cluster's private network.
//! So every host but the registry's own is checked, at the address it
//! resolves to (a name that resolves to a forbidden address is refused
//! the same as the address written out):
//!
//! - link-local addresses (169.254.0.0/16, fe80::/10, where the metadata
//!   services of AWS, GCP and Azure answer), AWS's IPv6 metadata address
//!   (fd00:ec2::254) and unspecified addresses: never;
//! - loopback and private addresses (10/8, 172.16/12, 192.168/16,
//!   100.64/10, fc00::/7): only when the registry itself is at such an
//!   address (a registry in the same private network legitimately sends
//!   its clients to a blob store beside it);
//! - public addresses: always.
//!
//! A redirect from HTTPS to plain HTTP is refused too (it would expose a
//! signed URL, and whatever the next hop asks for, to the network), and
//! redirects stop after [`MAX_REDIRECTS`].
//!
//! The checks are wired into the registry host's HTTP client (its
//! redirect policy and its DNS resolver), so every request a source makes
//! — the probe, tokens, manifests, blobs — goes through them.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Hops one request follows; a registry needs one (to its blob store).
pub const MAX_REDIRECTS: usize = 5;

/// What kind of network an address is on, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reach {
    Public,
    Private,
    Loopback,
    /// Link-local, metadata, unspecified: never a place to send a request
    /// that a registry chose.
    Forbidden,
}

fn reach_v4(ip: Ipv4Addr) -> Reach {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast() || a == 0 {
        Reach::Forbidden
    } else if ip.is_loopback() {
        Reach::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Reach::Private
    } else {
        Reach::Public
    }
}

/// AWS's instance metadata service over IPv6.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => reach_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return reach_v4(v4);
            }
            let first = v6.segments()[0];
            if v6 == AWS_METADATA_V6 || v6.is_unspecified() || (first & 0xffc0) == 0xfe80 {
                Reach::Forbidden
            } else if v6.is_loopback() {
                Reach::Loopback
            } else if (first & 0xfe00) == 0xfc00 {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

/// The IPv4 address an IPv6 one carries to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64's well-known
/// prefix (`64:ff9b::a.b.c.d`, which a NAT64 gateway forwards to that
/// IPv4 address) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if !(hi == 0 && lo <= 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn describe(r: Reach) -> &'static str {
    match r {
        Reach::Public => "public",
        Reach::Private => "private",
        Reach::Loopback => "loopback",
        Reach::Forbidden => "link-local, metadata or unspecified",
    }
}

/// A request a registry asked for and sizeguard would not send. Found in
/// a reqwest error's sources, it makes the failure final (no retry).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The rules for one registry host.
#[derive(Debug)]
pub struct Egress {
    /// The registry's host name (or address), without port or brackets,
    /// lower-cased: requests to it are never filtered.
    registry: String,
    /// Where the registry itself is: those kinds of address are allowed
    /// to the hosts it names.
    own: Mutex<HashSet<Reach>>,
}

impl Egress {
    /// The rules for a registry at `host` (`name[:port]` or
    /// `[v6][:port]`). Where the registry itself is becomes known from its
    /// address, or when its name is first resolved.
    pub fn for_registry(host: &str) -> Arc<Self> {
        let name = host_name(host).to_ascii_lowercase();
        let mut own = HashSet::new();
        if let Ok(ip) = name.parse::<IpAddr>() {
            own.insert(reach(ip));
        } else if name == "localhost" {
            own.insert(Reach::Loopback);
        }
        Arc::new(Egress {
            registry: name,
            own: Mutex::new(own),
        })
    }

    fn is_registry(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.registry)
    }

    /// Whether another host at `ip` may be reached.
    fn allows(&self, ip: IpAddr) -> Result<(), Reach> {
        match reach(ip) {
            Reach::Public => Ok(()),
            Reach::Forbidden => Err(Reach::Forbidden),
            r if self
                .own
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&r) =>
            {
                Ok(())
            }
            r => Err(r),
        }
    }

    fn refusal(&self, host: &str, ip: IpAddr, r: Reach) -> Refused {
        let why = match r {
            Reach::Forbidden => "never reached for a registry".to_string(),
            _ => format!(
                "reached only when the registry itself is on such an address, and {} is not",
                self.registry
            ),
        };
        Refused(format!(
            "registry {} sent sizeguard to {host} ({ip}), a {} address: {why}",
            self.registry,
            describe(r)
        ))
    }

    /// Checks a URL the registry named (a token service's realm, a
    /// redirect's target) whose host is written as an address; names are
    /// checked when they are resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let Some(host) = url.host_str() else {
            return Err(Refused(format!(
                "registry {} named a URL without a host",
                self.registry
            )));
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.is_registry(bare) {
            return Ok(());
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.allows(ip).map_err(|r| self.refusal(host, ip, r)),
            Err(_) => Ok(()),
        }
    }

    /// The redirect policy of the registry's clients.
    pub fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let rules = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refused(format!(
                    "registry {} redirected more than {MAX_REDIRECTS} times",
                    rules.registry
                )));
            }
            let downgrade = attempt
                .previous()
                .last()
                .is_some_and(|p| p.scheme() == "https")
                && attempt.url().scheme() != "https";
            if downgrade {
                let to = attempt.url().origin().ascii_serialization();
                return attempt.error(Refused(format!(
                    "registry {} redirected from HTTPS to {to}, which is not HTTPS",
                    rules.registry
                )));
            }
            match rules.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }

    /// The DNS resolver of the registry's clients.
    pub fn resolver(self: &Arc<Self>) -> Arc<dyn Resolve> {
        Arc::new(Resolver(self.clone()))
    }

    /// Resolves `name`, keeping only the addresses the rules allow.
    async fn resolve(
        &self,
        name: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((name, 0)).await?.collect();
        if self.is_registry(name) {
            let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
            own.extend(found.iter().map(|a| reach(a.ip())));
            return Ok(found);
        }
        let (allowed, refused): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|a| self.allows(a.ip()).is_ok());
        match (allowed.is_empty(), refused.first()) {
            (true, Some(first)) => {
                let r = self.allows(first.ip()).unwrap_err();
                Err(Box::new(self.refusal(name, first.ip(), r)))
            }
            _ => Ok(allowed),
        }
    }
}

struct Resolver(Arc<Egress>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.0.clone();
        Box::pin(async move {
            let addrs = rules.resolve(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// `host` of `host[:port]`, or `v6` of `[v6][:port]`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The refusal inside an error's sources, if a request failed on one.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_kinds() {
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "255.255.255.255",
        ] {
            assert_eq!(reach(ip(a)), Reach::Forbidden, "{a}");
        }
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert_eq!(reach(ip(a)), Reach::Loopback, "{a}");
        }
        for a in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "fd12::1",
            "fc00::1",
            "2002:0a00:0001::",
        ] {
            assert_eq!(reach(ip(a)), Reach::Private, "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "52.216.0.1",
        ] {
            assert_eq!(reach(ip(a)), Reach::Public, "{a}");
        }
    }

    #[test]
    fn a_public_registry_reaches_only_public_hosts() {
        let e = Egress::for_registry("registry.example.com");
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(e.check_url(&url("https://52.216.0.1/blob")).is_ok());
        assert!(e.check_url(&url("https://registry.example.com/x")).is_ok());
        assert!(e.check_url(&url("https://s3.example.com/x")).is_ok());
        for bad in [
            "http://169.254.169.254/latest/meta-data/iam/",
            "http://[fd00:ec2::254]/latest/",
            "http://127.0.0.1:8080/",
            "http://10.0.0.5/token",
            "http://[::1]/",
        ] {
            let refused = e.check_url(&url(bad)).unwrap_err();
            assert!(refused.0.contains("registry.example.com"), "{refused}");
        }
    }

    #[test]
    fn a_registry_on_loopback_reaches_loopback_but_never_metadata() {
        let e = Egress::for_registry("127.0.0.1:5000");
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(e.check_url(&url("http://127.0.0.1:5001/token")).is_ok());
        assert!(e.check_url(&url("http://localhost:5001/token")).is_ok());
        assert!(e.check_url(&url("http://10.1.2.3/")).is_err());
        assert!(e.check_url(&url("http://169.254.169.254/")).is_err());
        let e = Egress::for_registry("10.0.0.7:5000");
        assert!(e.check_url(&url("http://10.0.9.9/")).is_ok());
        assert!(e.check_url(&url("http://127.0.0.1/")).is_err());
        assert!(e.check_url(&url("http://169.254.169.254/")).is_err());
        let e = Egress::for_registry("[::1]:5000");
        assert!(e.check_url(&url("http://[::1]:9/")).is_ok());
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let e = Egress::for_registry("registry.example.com");
        let refused = e.resolve("localhost").await.unwrap_err();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        let e = Egress::for_registry("localhost:5000");
        assert!(!e.resolve("localhost").await.unwrap().is_empty());
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("r.example.com:5000"), "r.example.com");
        assert_eq!(host_name("r.example.com"), "r.example.com");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }
}
