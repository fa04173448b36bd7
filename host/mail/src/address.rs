//! Address normalisation: the one form in which addresses are compared.

use sha2::{Digest, Sha256};

/// The form an address is compared in: trimmed, without angle brackets,
/// the local part lower-cased, the domain in lower-case ASCII (IDNA, so
/// `bücher.example` and `xn--bcher-kva.example` are one domain). `None`
/// when it is not an address (no `@`, an empty side, spaces inside, or a
/// domain IDNA refuses).
pub fn normalize_address(raw: &str) -> Option<String> {
    let s = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || s.chars().any(char::is_whitespace) {
        return None;
    }
    let domain = idna::domain_to_ascii(domain.trim_end_matches('.')).ok()?;
    if domain.is_empty() {
        return None;
    }
    Some(format!("{}@{}", local.to_lowercase(), domain))
}

/// A stable 64-bit hash of a normalised address, for the compact header
/// index (the first 8 bytes of its SHA-256, so it never changes between
/// versions or machines).
pub fn address_hash(normalized: &str) -> u64 {
    let digest = Sha256::digest(normalized.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_form_for_case_space_brackets_and_idn() {
        for raw in [
            "Ann@Example.com",
            "  <ann@example.COM> ",
            "ann@example.com.",
        ] {
            assert_eq!(normalize_address(raw).as_deref(), Some("ann@example.com"));
        }
        assert_eq!(
            normalize_address("Bob@Bücher.Example").as_deref(),
            Some("bob@xn--bcher-kva.example")
        );
        assert_eq!(
            normalize_address("bob@xn--bcher-kva.example"),
            normalize_address("BOB@BÜCHER.example")
        );
        for bad in ["", "ann", "@x.test", "ann@", "a nn@x.test"] {
            assert_eq!(normalize_address(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(local in "[A-Za-z0-9._+-]{1,12}", domain in "[A-Za-z0-9-]{1,10}\\.[a-z]{2,4}") {
            let once = normalize_address(&format!("{local}@{domain}"));
            if let Some(once) = once {
                prop_assert_eq!(normalize_address(&once), Some(once.clone()));
                prop_assert_eq!(address_hash(&once), address_hash(&normalize_address(&once.to_uppercase()).unwrap()));
            }
        }
    }
}
