//! The operator's grant to a plugin, and the policy it makes for one account.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::address::{AddressClass, classify};
use crate::endpoint::{Endpoint, EndpointError, Scheme, Template};

/// What the operator grants one plugin, across all its accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorGrant {
    /// The declared templates granted, as written by the plugin; `None` grants
    /// every declared template.
    pub endpoints: Option<Vec<String>>,
    /// Non-public networks (loopback, private, link-local) the plugin may
    /// reach. Empty by default: only public addresses.
    pub private_networks: Vec<IpNet>,
    /// Whether the host may write a secret into a connection that is not
    /// encrypted (plain IMAP/SMTP without STARTTLS). Off by default.
    pub plaintext_credentials: bool,
    /// Declared HTTP origins the operator serves from another base URL (a
    /// proxy, or an emulator in tests). The plugin still names, and is
    /// checked against, the declared origin; the host connects elsewhere.
    pub origins: Vec<Origin>,
}

/// A declared HTTP origin served from another base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The origin as plugins declare it: `https://gmail.googleapis.com:443`.
    pub declared: Endpoint,
    /// Where requests for it go: `http://127.0.0.1:8080`.
    pub served_at: Endpoint,
}

impl std::str::FromStr for Origin {
    type Err = String;

    /// `https://gmail.googleapis.com=http://127.0.0.1:8080`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (declared, served_at) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected ORIGIN=BASE_URL"))?;
        let parse = |url: &str| -> Result<Endpoint, String> {
            let url = url.trim().trim_end_matches('/');
            let endpoint = Template::parse(url)
                .and_then(|t| t.render(&BTreeMap::new()))
                .map_err(|e| format!("`{url}`: {e}"))?;
            match endpoint.scheme {
                Scheme::Https | Scheme::Http => Ok(endpoint),
                other => Err(format!("`{url}`: only http and https origins, not {other}")),
            }
        };
        Ok(Origin {
            declared: parse(declared)?,
            served_at: parse(served_at)?,
        })
    }
}

impl OperatorGrant {
    /// Grant every declared endpoint and nothing more.
    pub fn all_declared() -> Self {
        Self::default()
    }

    fn grants(&self, template: &Template) -> bool {
        self.grants_template(template.as_str())
    }

    /// Whether a declared endpoint template (as the plugin wrote it) is granted.
    pub fn grants_template(&self, template: &str) -> bool {
        self.endpoints
            .as_ref()
            .is_none_or(|granted| granted.iter().any(|g| g == template))
    }
}

/// One refused connection or request, with what would have allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What the plugin tried to reach (`tls://evil.example:993`).
    pub attempted: String,
    /// Why it was refused.
    pub reason: String,
    /// The grant or declaration that would allow it.
    pub would_allow: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} denied: {}; allowed only by {}",
            self.attempted, self.reason, self.would_allow
        )
    }
}

/// What one plugin may reach for one account.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// Granted endpoints, each with the index of the template it came from.
    allowed: Vec<(Endpoint, usize)>,
    /// Declared but not granted: for explaining denials.
    declared_only: Vec<(Endpoint, String)>,
    private_networks: Vec<IpNet>,
    plaintext_credentials: bool,
    origins: Vec<Origin>,
}

impl AccountPolicy {
    /// Render the plugin's declared templates with the account's settings and
    /// keep the granted ones. A template whose fields the account leaves empty
    /// is left out; a field whose value is not a valid host or port is an error
    /// that names the field.
    pub fn new(
        declared: &[Template],
        grant: &OperatorGrant,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, EndpointError> {
        let mut allowed = Vec::new();
        let mut declared_only = Vec::new();
        for (index, template) in declared.iter().enumerate() {
            let endpoint = match template.render(settings) {
                Ok(e) => e,
                Err(EndpointError::MissingField { .. }) => continue,
                Err(e) => return Err(e),
            };
            if grant.grants(template) {
                allowed.push((endpoint, index));
            } else {
                declared_only.push((endpoint, template.as_str().to_string()));
            }
        }
        Ok(AccountPolicy {
            allowed,
            declared_only,
            private_networks: grant.private_networks.clone(),
            plaintext_credentials: grant.plaintext_credentials,
            origins: grant.origins.clone(),
        })
    }

    /// Check an endpoint by scheme, host name and port, before any DNS.
    /// On success, the index of the declared template that grants it.
    pub fn check_endpoint(&self, endpoint: &Endpoint) -> Result<usize, Denial> {
        if let Some((_, index)) = self.allowed.iter().find(|(e, _)| e == endpoint) {
            return Ok(*index);
        }
        let attempted = endpoint.to_string();
        Err(
            match self.declared_only.iter().find(|(e, _)| e == endpoint) {
                Some((_, template)) => Denial {
                    attempted,
                    reason: "the plugin declares it but the operator did not grant it".into(),
                    would_allow: format!("a grant of `{template}`"),
                },
                None => Denial {
                    reason: "the plugin does not declare this endpoint".into(),
                    would_allow: format!(
                        "a plugin version declaring `{attempted}`, granted by the operator"
                    ),
                    attempted,
                },
            },
        )
    }

    /// Check an address a granted endpoint's name resolved to: public addresses
    /// pass; loopback, private, link-local and special ones only where the
    /// operator granted a network holding them.
    pub fn check_address(&self, endpoint: &Endpoint, ip: IpAddr) -> Result<(), Denial> {
        let class = classify(ip);
        if class == AddressClass::Public || self.private_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(Denial {
            attempted: endpoint.to_string(),
            reason: format!("{} resolved to {ip}, a {class} address", endpoint.host),
            would_allow: format!("a grant of the private network {}", IpNet::from(ip)),
        })
    }

    /// Where a granted endpoint is actually reached: itself, or the base
    /// URL the operator serves its origin from.
    pub fn served_at<'a>(&'a self, endpoint: &'a Endpoint) -> &'a Endpoint {
        self.origins
            .iter()
            .find(|o| &o.declared == endpoint)
            .map_or(endpoint, |o| &o.served_at)
    }

    /// Whether secrets may be written into connections that are not encrypted.
    pub fn plaintext_credentials(&self) -> bool {
        self.plaintext_credentials
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Vec<Template> {
        [
            "tls://{imap_host}:{imap_port}",
            "tcp://{imap_host}:143",
            "tls://{smtp_host}:465",
        ]
        .iter()
        .map(|t| Template::parse(t).unwrap())
        .collect()
    }

    fn settings() -> BTreeMap<String, String> {
        [("imap_host", "imap.example.com"), ("imap_port", "993")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn grants_exactly_the_rendered_endpoints() {
        let p =
            AccountPolicy::new(&templates(), &OperatorGrant::all_declared(), &settings()).unwrap();
        let ok = Endpoint::new(Scheme::Tls, "IMAP.example.com", 993).unwrap();
        assert_eq!(p.check_endpoint(&ok), Ok(0));
        assert_eq!(
            p.check_endpoint(&Endpoint::new(Scheme::Tcp, "imap.example.com", 143).unwrap()),
            Ok(1)
        );
        for bad in [
            Endpoint::new(Scheme::Tls, "imap.example.com", 994).unwrap(),
            Endpoint::new(Scheme::Tcp, "imap.example.com", 993).unwrap(),
            Endpoint::new(Scheme::Tls, "evil.example", 993).unwrap(),
            Endpoint::new(Scheme::Tls, "imap.example.com.evil.example", 993).unwrap(),
        ] {
            let denial = p.check_endpoint(&bad).unwrap_err();
            assert_eq!(denial.attempted, bad.to_string());
            assert!(denial.reason.contains("does not declare"), "{denial}");
        }
    }

    #[test]
    fn a_declared_endpoint_the_operator_withheld_says_which_grant_is_missing() {
        let grant = OperatorGrant {
            endpoints: Some(vec!["tls://{imap_host}:{imap_port}".into()]),
            ..OperatorGrant::default()
        };
        let p = AccountPolicy::new(&templates(), &grant, &settings()).unwrap();
        let denial = p
            .check_endpoint(&Endpoint::new(Scheme::Tcp, "imap.example.com", 143).unwrap())
            .unwrap_err();
        assert_eq!(denial.would_allow, "a grant of `tcp://{imap_host}:143`");
    }

    #[test]
    fn private_addresses_need_a_grant() {
        let e = Endpoint::new(Scheme::Tls, "imap.example.com", 993).unwrap();
        let p =
            AccountPolicy::new(&templates(), &OperatorGrant::all_declared(), &settings()).unwrap();
        assert!(
            p.check_address(&e, "93.184.216.34".parse().unwrap())
                .is_ok()
        );
        let denial = p
            .check_address(&e, "127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert!(
            denial.reason.contains("127.0.0.1, a loopback address"),
            "{denial}"
        );
        assert_eq!(
            denial.would_allow,
            "a grant of the private network 127.0.0.1/32"
        );
        assert!(
            p.check_address(&e, "169.254.169.254".parse().unwrap())
                .is_err()
        );

        let grant = OperatorGrant {
            private_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..OperatorGrant::default()
        };
        let p = AccountPolicy::new(&templates(), &grant, &settings()).unwrap();
        assert!(p.check_address(&e, "127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_address(&e, "10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn a_bad_value_names_its_field_and_an_empty_one_drops_its_endpoint() {
        let mut s = settings();
        s.insert("imap_port".into(), "imap".into());
        let err = AccountPolicy::new(&templates(), &OperatorGrant::all_declared(), &s).unwrap_err();
        assert!(matches!(err, EndpointError::BadValue { ref field, .. } if field == "imap_port"));
        // smtp_host is empty: its endpoint is simply not there.
        let p =
            AccountPolicy::new(&templates(), &OperatorGrant::all_declared(), &settings()).unwrap();
        assert_eq!(p.allowed.len(), 2);
    }

    #[test]
    fn an_origin_is_served_from_its_base_url_and_checked_as_declared() {
        let origin: Origin = "https://gmail.googleapis.com=http://127.0.0.1:8080/"
            .parse()
            .unwrap();
        assert_eq!(
            origin.served_at,
            Endpoint::new(Scheme::Http, "127.0.0.1", 8080).unwrap()
        );
        assert!(
            "tls://imap.example.com:993=http://x"
                .parse::<Origin>()
                .is_err()
        );
        assert!("https://gmail.googleapis.com".parse::<Origin>().is_err());
        let declared = [Template::parse("https://gmail.googleapis.com").unwrap()];
        let grant = OperatorGrant {
            origins: vec![origin.clone()],
            ..OperatorGrant::default()
        };
        let p = AccountPolicy::new(&declared, &grant, &BTreeMap::new()).unwrap();
        let gmail = Endpoint::new(Scheme::Https, "gmail.googleapis.com", 443).unwrap();
        assert_eq!(p.check_endpoint(&gmail), Ok(0));
        assert_eq!(p.served_at(&gmail), &origin.served_at);
        // The base URL itself is not granted to the plugin.
        assert!(p.check_endpoint(&origin.served_at).is_err());
        let other = Endpoint::new(Scheme::Https, "example.com", 443).unwrap();
        assert_eq!(p.served_at(&other), &other);
    }
}
