//! Outgoing messages: a draft made into RFC 5322 bytes by `mail-builder`.

use mail_builder::MessageBuilder;

/// What the sender writes.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The sender's display name, if any.
    pub from_name: Option<String>,
    /// The sender's address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// A composed message.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// The whole message.
    pub raw: Vec<u8>,
}

/// Compose `draft`, sent at `sent_at` (Unix seconds), with a fresh
/// Message-ID in the sender's domain made unique by `unique`.
pub fn compose(draft: &Draft, sent_at: i64, unique: &str) -> Composed {
    let domain = draft
        .from
        .rsplit_once('@')
        .map_or("mailroom.invalid", |(_, d)| d);
    let message_id = format!("{unique}.mailroom@{domain}");
    let from = match &draft.from_name {
        Some(name) => MessageBuilder::new().from((name.as_str(), draft.from.as_str())),
        None => MessageBuilder::new().from(draft.from.as_str()),
    };
    let mut builder = from
        .to(draft.to.iter().map(String::as_str).collect::<Vec<_>>())
        .subject(draft.subject.as_str())
        .message_id(message_id.as_str())
        .date(sent_at)
        .text_body(draft.text.as_str());
    if !draft.cc.is_empty() {
        builder = builder.cc(draft.cc.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let raw = builder.write_to_vec().unwrap_or_default();
    Composed { message_id, raw }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_mail_parses_back() {
        let draft = Draft {
            from_name: Some("Alice Ä".into()),
            from: "alice@corp.test".into(),
            to: vec!["client@x.test".into()],
            cc: vec!["boss@corp.test".into()],
            subject: "Angebot für Sie".into(),
            text: "Hello\n.\nbye".into(),
        };
        let c = compose(&draft, 1_700_000_000, "abc");
        let parsed = crate::parse(&c.raw).unwrap();
        assert_eq!(parsed.subject, "Angebot für Sie");
        assert_eq!(parsed.message_id.as_deref(), Some("abc.mailroom@corp.test"));
        assert_eq!(parsed.sent_at, Some(1_700_000_000));
        let addresses: Vec<&str> = parsed.addresses().collect();
        assert!(addresses.contains(&"client@x.test") && addresses.contains(&"boss@corp.test"));
    }
}
