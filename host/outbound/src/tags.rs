//! Personalisation tags: `%FIRSTNAME%` and the like in an automated email's
//! subject and body, filled from the recipient and the deal. A tag that is
//! not known, or that needs a deal the action has not got, is an error that
//! names it; text between percent signs that is not a tag's shape (`50%`,
//! `100% sure`) is left alone.

use std::collections::BTreeMap;

/// The tags, and what each is filled with.
pub const TAGS: &[(&str, &str)] = &[
    ("FIRSTNAME", "the recipient's first name"),
    ("LASTNAME", "the recipient's last name"),
    ("EMAIL", "the recipient's email address"),
    ("DEAL_TITLE", "the deal's title"),
    ("DEAL_VALUE", "the deal's value and currency"),
    ("DEAL_OWNER_NAME", "the deal owner's name"),
];

/// What the tags are filled with for one send: tag name to text; tags
/// absent here (the deal's, for a contact) are refused.
pub type Values = BTreeMap<&'static str, String>;

/// Why a template cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// `%NAME%` is not a tag.
    #[error("%{0}% is not a personalisation tag (known: {known})", known = known())]
    Unknown(String),
    /// The tag needs what this send has not got (a deal).
    #[error("%{0}% needs a deal: run the action for a deal, or leave the tag out")]
    Unavailable(String),
}

fn known() -> String {
    TAGS.iter()
        .map(|(t, _)| format!("%{t}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A tag's shape: capital letters and underscores, starting with a letter.
fn tag_shaped(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// `template` with every tag replaced by its value.
pub fn fill(template: &str, values: &Values) -> Result<String, TagError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if tag_shaped(&after[..end]) => {
                let name = &after[..end];
                if !TAGS.iter().any(|(t, _)| *t == name) {
                    return Err(TagError::Unknown(name.to_string()));
                }
                let value = values
                    .get(name)
                    .ok_or_else(|| TagError::Unavailable(name.to_string()))?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A contact's name split as the tags use it: the first word, and the rest.
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        let mut v = Values::new();
        v.insert("FIRSTNAME", "Ann".into());
        v.insert("EMAIL", "ann@acme.test".into());
        v
    }

    #[test]
    fn tags_are_filled_and_other_percent_signs_left_alone() {
        assert_eq!(
            fill("Hi %FIRSTNAME%, 50% off for %EMAIL% (100% sure)", &values()).unwrap(),
            "Hi Ann, 50% off for ann@acme.test (100% sure)"
        );
        assert_eq!(fill("%%FIRSTNAME%%", &values()).unwrap(), "%Ann%");
    }

    #[test]
    fn unknown_and_unavailable_tags_are_named() {
        assert_eq!(
            fill("Hi %NICKNAME%", &values()),
            Err(TagError::Unknown("NICKNAME".into()))
        );
        assert_eq!(
            fill("About %DEAL_TITLE%", &values()),
            Err(TagError::Unavailable("DEAL_TITLE".into()))
        );
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(
            split_name(" Ann  van Acme "),
            ("Ann".into(), "van Acme".into())
        );
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
    }

    proptest::proptest! {
        /// Text without a tag-shaped `%NAME%` comes back unchanged.
        #[test]
        fn text_without_tags_is_unchanged(text in "[a-z0-9 %.,!]{0,60}") {
            proptest::prop_assert_eq!(fill(&text, &values()).unwrap(), text);
        }
    }
}
