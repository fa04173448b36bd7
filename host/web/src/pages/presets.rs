//! The IMAP and SMTP servers of well-known mail services, to pre-fill the
//! IMAP connect form from the address (the fields stay editable). An
//! address whose domain is not listed gets nothing: guessing a server
//! would send the password to whatever answers at that name.

use axum::Json;
use axum::extract::Query;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Viewer;

/// Domain, IMAP server, SMTP server.
const SERVERS: &[(&str, &str, &str)] = &[
    ("gmail.com", "imap.gmail.com", "smtp.gmail.com"),
    ("googlemail.com", "imap.gmail.com", "smtp.gmail.com"),
    ("outlook.com", "outlook.office365.com", "smtp.office365.com"),
    ("hotmail.com", "outlook.office365.com", "smtp.office365.com"),
    ("live.com", "outlook.office365.com", "smtp.office365.com"),
    ("yahoo.com", "imap.mail.yahoo.com", "smtp.mail.yahoo.com"),
    ("icloud.com", "imap.mail.me.com", "smtp.mail.me.com"),
    ("me.com", "imap.mail.me.com", "smtp.mail.me.com"),
    ("fastmail.com", "imap.fastmail.com", "smtp.fastmail.com"),
    ("aol.com", "imap.aol.com", "smtp.aol.com"),
    ("gmx.com", "imap.gmx.com", "mail.gmx.com"),
    ("zoho.com", "imap.zoho.com", "smtp.zoho.com"),
];

#[derive(Deserialize)]
pub(crate) struct Lookup {
    provider: String,
    address: String,
}

/// The IMAP form's server fields for `address`, by field name (`f.NAME`):
/// empty when the domain is not known or the provider is not IMAP.
fn presets(provider: &str, address: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if provider != "imap" {
        return out;
    }
    if let Some((_, imap, smtp)) = SERVERS.iter().find(|(d, _, _)| *d == domain) {
        for (field, value) in [
            ("imap_host", *imap),
            ("imap_port", "993"),
            ("imap_security", "tls"),
            ("smtp_host", *smtp),
            ("smtp_port", "587"),
            ("smtp_security", "starttls"),
        ] {
            out.insert(format!("f.{field}"), Value::String(value.into()));
        }
    }
    out
}

/// `GET /emails/presets?provider=imap&address=…`.
pub(crate) async fn lookup(_: Viewer, Query(q): Query<Lookup>) -> Json<Map<String, Value>> {
    Json(presets(&q.provider, &q.address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_domains_fill_the_servers_and_unknown_ones_nothing() {
        let p = presets("imap", "Ann@GMail.com");
        assert_eq!(p["f.imap_host"], "imap.gmail.com");
        assert_eq!(p["f.smtp_host"], "smtp.gmail.com");
        assert!(presets("imap", "ann@corp.test").is_empty());
        assert!(presets("exchange", "ann@gmail.com").is_empty());
    }
}
