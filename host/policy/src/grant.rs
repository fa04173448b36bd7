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
    /// Host names the rendered endpoints must match (`mail.corp.example`,
    /// or `*.corp.example` for any name under it); empty: any name.
    pub hosts: Vec<String>,
    /// What one plugin is granted beyond the above, by plugin name (its own
    /// `plugins` is ignored); see [`OperatorGrant::for_plugin`].
    pub plugins: BTreeMap<String, OperatorGrant>,
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

    /// The grant of the plugin `name`: what every plugin is granted, with
    /// that plugin's own private networks and origins added, its plaintext
    /// permission, and its endpoint list and host narrowing where it has them.
    pub fn for_plugin(&self, name: &str) -> OperatorGrant {
        let mut grant = OperatorGrant {
            plugins: BTreeMap::new(),
            ..self.clone()
        };
        if let Some(own) = self.plugins.get(name) {
            grant
                .private_networks
                .extend(own.private_networks.iter().cloned());
            grant.origins.extend(own.origins.iter().cloned());
            grant.plaintext_credentials |= own.plaintext_credentials;
            if !own.hosts.is_empty() {
                grant.hosts = own.hosts.clone();
            }
            if own.endpoints.is_some() {
                grant.endpoints = own.endpoints.clone();
            }
        }
        grant
    }

    /// Add one plugin's grant from `PLUGIN:KEY[=VALUE]`: `private=CIDR` (a
    /// private network it may reach), `plaintext` (secrets over unencrypted
    /// connections), `host=NAME` or `host=*.DOMAIN` (the only hosts its
    /// endpoints may name), `endpoint=TEMPLATE` (grant only the declared
    /// templates listed). The error names the item and what is wrong.
    pub fn add(&mut self, item: &str) -> Result<(), String> {
        let item = item.trim();
        let bad = |why: &str| Err(format!("`{item}`: {why}"));
        let Some((plugin, rest)) = item.split_once(':') else {
            return bad("expected PLUGIN:KEY[=VALUE], e.g. imap:private=10.0.0.0/8");
        };
        if plugin.is_empty()
            || !plugin
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("the plugin name must be of a-z, 0-9 and -");
        }
        let own = self.plugins.entry(plugin.to_string()).or_default();
        match rest.split_once('=') {
            None if rest == "plaintext" => own.plaintext_credentials = true,
            Some(("private", cidr)) => match cidr.parse::<IpNet>() {
                Ok(net) => own.private_networks.push(net),
                Err(_) => return bad("not a network in CIDR form (10.0.0.0/8)"),
            },
            Some(("host", pattern)) => {
                let name = pattern.strip_prefix("*.").unwrap_or(pattern);
                if Endpoint::new(Scheme::Tls, name, 1).is_err() {
                    return bad("not a host name (mail.example.com or *.example.com)");
                }
                own.hosts.push(pattern.to_ascii_lowercase());
            }
            Some(("endpoint", template)) => match Template::parse(template) {
                Ok(_) => own
                    .endpoints
                    .get_or_insert_with(Vec::new)
                    .push(template.to_string()),
                Err(e) => return bad(&e.to_string()),
            },
            _ => return bad("the key must be private=, plaintext, host= or endpoint="),
        }
        Ok(())
    }

    /// Whether the narrowing lets an endpoint name `host`.
    fn allows_host(&self, host: &str) -> bool {
        self.hosts.is_empty()
            || self.hosts.iter().any(|p| match p.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => p == host,
            })
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
    /// Declared and rendered, but outside the operator's host narrowing.
    narrowed: Vec<Endpoint>,
    hosts: Vec<String>,
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
        let mut narrowed = Vec::new();
        for (index, template) in declared.iter().enumerate() {
            let endpoint = match template.render(settings) {
                Ok(e) => e,
                Err(EndpointError::MissingField { .. }) => continue,
                Err(e) => return Err(e),
            };
            if !grant.allows_host(&endpoint.host) {
                narrowed.push(endpoint);
            } else if grant.grants(template) {
                allowed.push((endpoint, index));
            } else {
                declared_only.push((endpoint, template.as_str().to_string()));
            }
        }
        Ok(AccountPolicy {
            allowed,
            declared_only,
            narrowed,
            hosts: grant.hosts.clone(),
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
        if self.narrowed.contains(endpoint) {
            return Err(Denial {
                reason: format!(
                    "the operator allows this plugin only the hosts {}",
                    self.hosts.join(", ")
                ),
                would_allow: format!("a grant of host `{}` to this plugin", endpoint.host),
                attempted,
            });
        }
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
    fn each_plugin_gets_its_own_networks_plaintext_and_hosts() {
        let mut grant = OperatorGrant::default();
        for item in [
            "imap:private=10.0.0.0/8",
            "imap:plaintext",
            "exchange:host=*.corp.example",
        ] {
            grant.add(item).unwrap();
        }
        let imap = grant.for_plugin("imap");
        assert_eq!(imap.private_networks, vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(imap.plaintext_credentials);
        let exchange = grant.for_plugin("exchange");
        assert!(exchange.private_networks.is_empty() && !exchange.plaintext_credentials);
        let gmail = grant.for_plugin("gmail");
        assert_eq!(gmail, OperatorGrant::default());

        let t = vec![Template::parse("https://{server}").unwrap()];
        let at = |host: &str| {
            let settings = [("server".to_string(), host.to_string())].into();
            let p = AccountPolicy::new(&t, &exchange, &settings).unwrap();
            p.check_endpoint(&Endpoint::new(Scheme::Https, host, 443).unwrap())
        };
        assert_eq!(at("mail.corp.example"), Ok(0));
        for outside in [
            "corp.example",
            "mail.corp.example.evil.test",
            "evilcorp.example",
        ] {
            let denial = at(outside).unwrap_err();
            assert!(denial.reason.contains("*.corp.example"), "{denial}");
        }
    }

    #[test]
    fn a_bad_grant_item_is_refused_naming_it() {
        let mut grant = OperatorGrant::default();
        for (item, why) in [
            ("imap", "PLUGIN:KEY"),
            ("imap:private=10.0.0.0/33", "CIDR"),
            ("Imap:plaintext", "plugin name"),
            ("imap:host=bad host", "host name"),
            ("imap:everything", "the key"),
        ] {
            let err = grant.add(item).unwrap_err();
            assert!(err.contains(item) && err.contains(why), "{err}");
        }
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
