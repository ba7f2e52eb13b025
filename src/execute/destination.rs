//! Where countersign may send an agent's callback: by default only to public (globally
//! routable) addresses, never to loopback, private, link-local, unspecified, multicast or other
//! special-purpose ones (the cloud metadata service, the host itself, the internal network).
//! The check runs on the address actually connected to: literal IP hosts are checked as
//! written (after the URL parser normalised spellings such as `2130706433` or `0x7f.1`), and
//! names go through [`PublicOnly`], a DNS resolver for reqwest that drops every internal
//! address it resolves, so a name cannot resolve to a public address when checked and an
//! internal one when connected (no DNS-rebinding window). Hosts listed in
//! `[execution] callback_hosts` are opted in by the operator and not checked here.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is a public unicast address (not special-purpose under RFC 6890 and its
/// successors). IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses are judged by the
/// IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network", 0.0.0.0
        || a == 10                              // private
        || a == 127                             // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)               // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 88 && c == 99)     // 6to4 relay anycast
        || (a == 192 && b == 168)               // private
        || (a == 198 && (b == 18 || b == 19))   // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[0] & 0xfe00 == 0xfc00             // unique local
        || s[0] & 0xffc0 == 0xfe80             // link-local
        || s[0] & 0xffc0 == 0xfec0             // site-local (deprecated)
        || s[0] & 0xff00 == 0xff00             // multicast
        || (s[0] == 0x2001 && s[1] < 0x0200)   // IETF protocol assignments (Teredo, ORCHID…)
        || (s[0] == 0x2001 && s[1] == 0x0db8)  // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || s[0] == 0) // the rest of ::/16 (IPv4-compatible and reserved)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let from =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(from(s[1], s[2]))
    } else {
        None
    }
}

/// Why a callback URL may not be called, if its host is a literal internal address.
/// Names are not resolved here; [`PublicOnly`] checks them when connecting.
pub fn literal_refusal(url: &reqwest::Url) -> Option<String> {
    // The URL parser has already normalised IPv4 spellings; IPv6 hosts come bracketed.
    let host = url.host_str()?;
    let ip: IpAddr = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()?;
    (!is_public(ip)).then(|| {
        format!("{ip} is an internal address (loopback, private, link-local or special-purpose)")
    })
}

/// A reqwest DNS resolver that resolves through the system and keeps only public addresses;
/// a name with nothing public left fails to resolve, so nothing is sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublicOnly;

/// A name that resolves, but only to internal addresses.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to internal addresses")]
pub struct InternalOnly(pub String);

/// The [`InternalOnly`] refusal behind a failed connection, if that is what it was.
pub fn internal_only<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a InternalOnly> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(found) = err.downcast_ref::<InternalOnly>() {
            return Some(found);
        }
        source = err.source();
    }
    None
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let why: Box<dyn std::error::Error + Send + Sync> = if all.is_empty() {
                    format!("{host} does not resolve").into()
                } else {
                    Box::new(InternalOnly(host))
                };
                return Err(why);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn internal_and_special_purpose_addresses_are_not_public() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            assert!(!public(ip), "{ip} must not count as public");
        }
    }

    #[test]
    fn global_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn literal_hosts_are_judged_after_normalisation() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://017700000001/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let u = reqwest::Url::parse(url).unwrap();
            assert!(literal_refusal(&u).is_some(), "{url}");
        }
        for url in ["https://8.8.8.8/x", "https://hooks.example.com/x"] {
            let u = reqwest::Url::parse(url).unwrap();
            assert!(literal_refusal(&u).is_none(), "{url}");
        }
    }

    #[tokio::test]
    async fn names_resolving_only_to_internal_addresses_do_not_resolve() {
        let err = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(err.to_string().contains("internal"), "{err}");
    }
}
