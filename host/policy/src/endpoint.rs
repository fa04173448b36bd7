//! Endpoint templates and the concrete endpoints they render to.

use std::collections::BTreeMap;
use std::fmt;

/// How a plugin talks to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// A TCP stream with TLS from the first byte.
    Tls,
    /// A plain TCP stream (which the plugin may upgrade with STARTTLS).
    Tcp,
    /// HTTP over TLS.
    Https,
    /// Plain HTTP.
    Http,
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tls" => Scheme::Tls,
            "tcp" => Scheme::Tcp,
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return None,
        })
    }

    /// The scheme as written in a template.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tls => "tls",
            Scheme::Tcp => "tcp",
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Https => Some(443),
            Scheme::Http => Some(80),
            Scheme::Tls | Scheme::Tcp => None,
        }
    }

    /// Whether traffic under this scheme is encrypted from the first byte.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Https)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A concrete endpoint: scheme, normalised host name (or IP literal) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// How it is reached.
    pub scheme: Scheme,
    /// Lower-case ASCII host name (IDN in punycode) or an IP literal without brackets.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from parts, normalising the host name.
    pub fn new(scheme: Scheme, host: &str, port: u16) -> Result<Self, EndpointError> {
        Ok(Endpoint {
            scheme,
            host: normalise_host(host)?,
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Why a template or an endpoint is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The template itself is malformed (a plugin bug).
    #[error("endpoint template `{template}`: {why}")]
    BadTemplate {
        /// The template as declared.
        template: String,
        /// What is wrong.
        why: String,
    },
    /// An account field the template needs has no value.
    #[error("`{field}` is required")]
    MissingField {
        /// The field's name.
        field: String,
    },
    /// An account field's value does not make a valid host or port.
    #[error("`{field}`: {why}")]
    BadValue {
        /// The field's name.
        field: String,
        /// What is wrong with its value.
        why: String,
    },
    /// A host name that is not a valid DNS name or IP address.
    #[error("`{host}` is not a valid host name")]
    BadHost {
        /// The offending text.
        host: String,
    },
}

/// Template values the host provides for every account, beside the plugin's
/// fields: `address_domain`, the domain of the account's address (for
/// `https://autodiscover.{address_domain}`).
pub const HOST_VALUES: &[&str] = &["address_domain"];

/// The host-provided template values of an account with this address.
pub fn host_values(address: &str) -> BTreeMap<String, String> {
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d).trim();
    BTreeMap::from([("address_domain".to_string(), domain.to_lowercase())])
}

/// A declared endpoint template: `scheme://host[:port]`, where host and port
/// may each be a literal or one `{field}` placeholder; a host placeholder may
/// follow a literal prefix of whole labels (`autodiscover.{address_domain}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    scheme: Scheme,
    host: Part,
    port: Option<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A field's value, after a literal prefix (`autodiscover.`) or none.
    Field {
        prefix: String,
        name: String,
    },
}

impl Part {
    fn parse(s: &str, prefix_allowed: bool) -> Option<Self> {
        let (prefix, rest) = match s.find('{') {
            Some(at) if prefix_allowed => s.split_at(at),
            _ => ("", s),
        };
        let prefix_ok = prefix.is_empty()
            || (prefix.ends_with('.')
                && !prefix.contains(['{', '}', ':'])
                && !prefix.starts_with('.'));
        match rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(name) if is_field_name(name) && prefix_ok => Some(Part::Field {
                prefix: prefix.to_string(),
                name: name.to_string(),
            }),
            Some(_) => None,
            None if !s.is_empty() && !s.contains(['{', '}']) => Some(Part::Literal(s.to_string())),
            None => None,
        }
    }

    fn fill(&self, settings: &BTreeMap<String, String>) -> Result<String, EndpointError> {
        match self {
            Part::Literal(s) => Ok(s.clone()),
            Part::Field { prefix, name } => settings
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| format!("{prefix}{v}"))
                .ok_or_else(|| EndpointError::MissingField {
                    field: name.clone(),
                }),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Part::Field { name, .. } => Some(name),
            Part::Literal(_) => None,
        }
    }
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Template {
    /// Parse a declared template.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let bad = |why: &str| EndpointError::BadTemplate {
            template: text.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port]"))?;
        let scheme = Scheme::parse(scheme)
            .ok_or_else(|| bad("the scheme must be tls, tcp, https or http"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("a path is not part of an endpoint"));
        }
        let (host, port) = split_host_port(rest);
        let host = Part::parse(host, true).ok_or_else(|| {
            bad("the host must be a name, or one {field} after an optional `label.` prefix")
        })?;
        let port = port
            .map(|p| {
                Part::parse(p, false).ok_or_else(|| bad("the port must be a number or one {field}"))
            })
            .transpose()?;
        if let Some(Part::Literal(p)) = &port {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be between 1 and 65535"))?;
        }
        if let Part::Literal(h) = &host {
            normalise_host(h).map_err(|_| bad("the host is not a valid name"))?;
        }
        if port.is_none() && scheme.default_port().is_none() {
            return Err(bad("tls and tcp endpoints need a port"));
        }
        Ok(Template {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// The template as declared.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme it declares.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The account fields the template reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.host
            .field()
            .into_iter()
            .chain(self.port.as_ref().and_then(Part::field))
    }

    /// Fill the template from an account's settings.
    pub fn render(&self, settings: &BTreeMap<String, String>) -> Result<Endpoint, EndpointError> {
        let host = self.host.fill(settings)?;
        let host = normalise_host(&host).map_err(|_| match &self.host {
            Part::Field { name: field, .. } => EndpointError::BadValue {
                field: field.clone(),
                why: format!("`{host}` is not a valid host name"),
            },
            Part::Literal(_) => EndpointError::BadHost { host: host.clone() },
        })?;
        let port = match &self.port {
            None => self.scheme.default_port().unwrap_or(0),
            Some(part) => {
                let text = part.fill(settings)?;
                text.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| EndpointError::BadValue {
                        field: part.field().unwrap_or("port").to_string(),
                        why: format!("`{text}` is not a port between 1 and 65535"),
                    })?
            }
        };
        Ok(Endpoint {
            scheme: self.scheme,
            host,
            port,
        })
    }
}

/// Split `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

/// Normalise a host: an IP literal stays as it is written canonically;
/// a name is trimmed, lower-cased and converted to ASCII (IDNA), and must be
/// a valid DNS name.
pub(crate) fn normalise_host(host: &str) -> Result<String, EndpointError> {
    let trimmed = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if let Ok(ip) = trimmed.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let bad = || EndpointError::BadHost { host: host.into() };
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| bad())?;
    let valid = !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid { Ok(ascii) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_host_placeholder_may_follow_a_label_prefix() {
        let t = Template::parse("https://autodiscover.{address_domain}").unwrap();
        let values = host_values("Carol@Contoso.TEST");
        assert_eq!(
            t.render(&values).unwrap().to_string(),
            "https://autodiscover.contoso.test:443"
        );
        assert_eq!(t.fields().collect::<Vec<_>>(), ["address_domain"]);
        for bad in [
            "https://auto{x}",
            "https://.{x}",
            "https://a.{x}.b",
            "tls://h:9{port}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_fields_and_normalises_the_host() {
        let t = Template::parse("tls://{imap_host}:{imap_port}").unwrap();
        let e = t
            .render(&settings(&[
                ("imap_host", " IMAP.Example.COM. "),
                ("imap_port", "993"),
            ]))
            .unwrap();
        assert_eq!(e.to_string(), "tls://imap.example.com:993");
        let idn = t
            .render(&settings(&[
                ("imap_host", "mail.bücher.de"),
                ("imap_port", "993"),
            ]))
            .unwrap();
        assert_eq!(idn.host, "mail.xn--bcher-kva.de");
    }

    #[test]
    fn https_gets_its_default_port() {
        let t = Template::parse("https://gmail.googleapis.com").unwrap();
        assert_eq!(
            t.render(&BTreeMap::new()).unwrap().to_string(),
            "https://gmail.googleapis.com:443"
        );
    }

    #[test]
    fn names_the_field_at_fault() {
        let t = Template::parse("tls://{imap_host}:{imap_port}").unwrap();
        assert_eq!(
            t.render(&settings(&[("imap_port", "993")])),
            Err(EndpointError::MissingField {
                field: "imap_host".into()
            })
        );
        let err = t
            .render(&settings(&[
                ("imap_host", "evil.com/x"),
                ("imap_port", "993"),
            ]))
            .unwrap_err();
        assert!(
            matches!(err, EndpointError::BadValue { ref field, .. } if field == "imap_host"),
            "{err}"
        );
        let err = t
            .render(&settings(&[
                ("imap_host", "a.example"),
                ("imap_port", "99999"),
            ]))
            .unwrap_err();
        assert!(
            matches!(err, EndpointError::BadValue { ref field, .. } if field == "imap_port"),
            "{err}"
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        for t in [
            "imap.example.com:993",
            "ftp://x:1",
            "tls://{imap_host}",
            "https://x/path",
            "tls://{Host}:1",
            "tls://a{b}:1",
            "tls://x:0",
        ] {
            assert!(Template::parse(t).is_err(), "{t} should be rejected");
        }
    }

    #[test]
    fn ipv6_literals() {
        let t = Template::parse("tcp://[::1]:143").unwrap();
        assert_eq!(
            t.render(&BTreeMap::new()).unwrap().to_string(),
            "tcp://[::1]:143"
        );
    }

    proptest::proptest! {
        #[test]
        fn a_rendered_host_never_smuggles_a_port_or_path(value in "\\PC{0,40}") {
            let t = Template::parse("tls://{h}:993").unwrap();
            if let Ok(e) = t.render(&settings(&[("h", &value)])) {
                proptest::prop_assert_eq!(e.port, 993);
                proptest::prop_assert!(!e.host.contains(['/', '@', '?', '#', ' ']));
                proptest::prop_assert!(e.host.parse::<std::net::IpAddr>().is_ok() || !e.host.contains(':'));
            }
        }
    }
}
