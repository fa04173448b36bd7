//! Which kind of network an IP address belongs to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address, for deciding whether a plugin may reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A public, globally routed address.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, unique-local IPv6, carrier-grade NAT.
    Private,
    /// 169.254.0.0/16, fe80::/10 (cloud metadata services live here).
    LinkLocal,
    /// Unspecified, broadcast, multicast, documentation or reserved ranges.
    Special,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Special => "special-purpose",
        })
    }
}

/// Classify an address. IPv4-mapped and IPv4-compatible IPv6 addresses are
/// classified as the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        AddressClass::Special
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x0064 // NAT64 may reach anything; treat as special
        || first == 0
    {
        AddressClass::Special
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classes() {
        assert_eq!(class("8.8.8.8"), AddressClass::Public);
        assert_eq!(class("2a00:1450::1"), AddressClass::Public);
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("127.8.9.10"), AddressClass::Loopback);
        assert_eq!(class("::1"), AddressClass::Loopback);
        assert_eq!(class("10.1.2.3"), AddressClass::Private);
        assert_eq!(class("172.31.0.1"), AddressClass::Private);
        assert_eq!(class("192.168.1.1"), AddressClass::Private);
        assert_eq!(class("100.64.0.1"), AddressClass::Private);
        assert_eq!(class("fd00::1"), AddressClass::Private);
        assert_eq!(class("169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(class("0.0.0.0"), AddressClass::Special);
        assert_eq!(class("::"), AddressClass::Special);
        assert_eq!(class("224.0.0.1"), AddressClass::Special);
        assert_eq!(class("255.255.255.255"), AddressClass::Special);
    }

    #[test]
    fn mapped_addresses_count_as_what_they_carry() {
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:10.0.0.1"), AddressClass::Private);
        assert_eq!(class("::ffff:8.8.8.8"), AddressClass::Public);
    }
}

/// `text` with every IP address in it (`10.0.0.5`, `10.0.0.5:993`,
/// `[fd00::1]:993`, `fd00::1`) replaced by `(an address)`: for messages shown
/// to users, who typed a host name and must not learn what it resolved to
/// inside the operator's network.
pub fn without_addresses(text: &str) -> String {
    let is_part = |c: char| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_part) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c| !is_part(c))
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + len];
        let bare = token.trim_end_matches(['.', ':']);
        let address = bare.parse::<IpAddr>().is_ok()
            || bare.parse::<std::net::SocketAddr>().is_ok()
            || bare
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok();
        if address && bare.len() > 2 {
            out.push_str("(an address)");
            out.push_str(&token[bare.len()..]);
        } else {
            out.push_str(token);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod scrub_tests {
    use super::without_addresses;

    #[test]
    fn addresses_are_left_out_and_the_rest_kept() {
        assert_eq!(
            without_addresses(
                "tls://db.corp:993 denied: db.corp resolved to 10.0.0.5, a private address"
            ),
            "tls://db.corp:993 denied: db.corp resolved to (an address), a private address"
        );
        assert_eq!(
            without_addresses("connect 10.1.2.3:993 and [fd00::1]:25 or fe80::1."),
            "connect (an address) and (an address) or (an address)."
        );
        assert_eq!(
            without_addresses("at 12:30:45 on 2026-12-07, code 535 5.7.8 bad"),
            "at 12:30:45 on 2026-12-07, code 535 5.7.8 bad"
        );
    }
}
