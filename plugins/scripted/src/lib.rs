//! `scripted`: a provider whose mailbox is described by its account settings.
//!
//! It touches no network. The host's tests and benchmarks use it to drive the
//! runtime and the sync engine through every path a real provider can take:
//! paging, backfill progress, incremental mail, injected failures at given
//! pages, cursor expiry, per-message failures and slow calls.
//!
//! The mailbox: messages `0..messages`, message `i` received at
//! `now - span_days + i * spacing` (the newest has the highest index), from
//! or to the addresses in `contacts` in turn. Sync walks the window newest
//! first; raising `messages` later makes new mail appear for an incremental
//! sync. The cursor is `top:next:page`: messages below `top` are known,
//! `next` is the next index to fetch going down (-1 when the backfill is
//! done), `page` counts the pages served.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mailroom:provider/plugin",
    generate_all,
});

use exports::mailroom::provider::provider::{
    Account, Endpoint, Field, Guest, GuestSession, Message, MessageFailure, Outgoing, Page,
    PluginInfo, Progress, ProviderError, Session, Window,
};
use mailroom::provider::log::{self, Level};
use mailroom::provider::types::ConfigError;

const DAY: i64 = 86_400;

/// The plugin. Public so that the runtime benchmark can make the same call natively.
pub struct Scripted;

/// The mailbox a session serves, read from the account settings.
struct Script {
    address: String,
    messages: i64,
    page_size: i64,
    now: i64,
    span: i64,
    contacts: Vec<String>,
    failures: Vec<Failure>,
    bad: Vec<i64>,
    delay: Duration,
    body_bytes: usize,
}

/// A failure injected at one page: `PAGE:KIND` or `PAGE:KIND:UNTIL`.
struct Failure {
    page: u64,
    kind: String,
    until: Option<i64>,
}

fn setting<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

fn number(account: &Account, name: &str, default: i64) -> Result<i64, ProviderError> {
    match setting(account, name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| bad_config(name, format!("`{v}` is not a whole number"))),
    }
}

fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Script {
    fn read(account: &Account) -> Result<Self, ProviderError> {
        let messages = number(account, "messages", 10)?;
        let page_size = number(account, "page_size", 100)?;
        if messages < 0 {
            return Err(bad_config("messages", "must not be negative"));
        }
        if page_size < 1 {
            return Err(bad_config("page_size", "must be at least 1"));
        }
        let failures = setting(account, "fail")
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|spec| Failure::parse(spec.trim()))
            .collect::<Result<_, _>>()?;
        let bad = setting(account, "bad")
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| bad_config("bad", format!("`{s}` is not a message index")))
            })
            .collect::<Result<_, _>>()?;
        let contacts = setting(account, "contacts")
            .unwrap_or("contact@example.com")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>();
        if contacts.is_empty() {
            return Err(bad_config("contacts", "name at least one address"));
        }
        Ok(Script {
            address: account.address.clone(),
            messages,
            page_size,
            now: match setting(account, "now") {
                None | Some("") => wall_clock(),
                Some(_) => number(account, "now", 0)?,
            },
            span: number(account, "span_days", 400)?.max(1) * DAY,
            contacts,
            failures,
            bad,
            delay: Duration::from_millis(number(account, "delay_ms", 0)?.max(0) as u64),
            body_bytes: number(account, "body_bytes", 200)?.max(0) as usize,
        })
    }

    /// When message `i` was received: evenly spread over the span, the last one now.
    fn received_at(&self, i: i64) -> i64 {
        let spacing = (self.span / self.messages.max(1)).max(1);
        self.now - (self.messages - 1 - i) * spacing
    }

    fn message(&self, i: i64) -> Message {
        let contact = &self.contacts[(i as usize) % self.contacts.len()];
        let (from, to, folder) = if i % 3 == 2 {
            (self.address.as_str(), contact.as_str(), "Sent")
        } else {
            (contact.as_str(), self.address.as_str(), "INBOX")
        };
        let at = self.received_at(i);
        let body = "Scripted body line.\r\n".repeat(self.body_bytes / 21 + 1);
        let raw = format!(
            "Message-ID: <scripted-{i}@mailroom.test>\r\nDate: {date}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: Scripted message {i}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
            date = rfc2822(at),
        );
        Message {
            id: format!("{folder}:{i}"),
            thread_id: Some(format!("thread-{}", i / 4)),
            folder: folder.into(),
            flags: vec!["\\Seen".into()],
            received_at: at,
            raw: raw.into_bytes(),
        }
    }

    fn injected(&self, page: u64) -> Option<ProviderError> {
        if self.failures.is_empty() {
            return None;
        }
        let now = wall_clock();
        let failure = self
            .failures
            .iter()
            .find(|f| f.page == page && f.until.is_none_or(|until| now < until))?;
        Some(failure.error(page))
    }
}

impl Failure {
    fn parse(spec: &str) -> Result<Self, ProviderError> {
        let mut parts = spec.split(':');
        let page = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| {
            bad_config(
                "fail",
                format!("`{spec}` does not start with a page number"),
            )
        })?;
        let kind = parts
            .next()
            .ok_or_else(|| bad_config("fail", format!("`{spec}` names no failure")))?
            .to_string();
        let until = match parts.next() {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|_| bad_config("fail", format!("`{t}` is not a Unix time")))?,
            ),
        };
        Ok(Failure { page, kind, until })
    }

    fn error(&self, page: u64) -> ProviderError {
        let what = format!("injected at page {page}");
        match self.kind.as_str() {
            "auth-failed" => ProviderError::AuthFailed(format!("password rejected ({what})")),
            "unreachable" => ProviderError::Unreachable(format!("server down ({what})")),
            "rate-limited" => ProviderError::RateLimited(30),
            "cursor-expired" => ProviderError::CursorExpired,
            "bad-config" => bad_config("messages", what),
            "message-failed" => ProviderError::MessageFailed(MessageFailure {
                id: format!("page-{page}"),
                why: what,
            }),
            "panic" => panic!("scripted panic {what}"),
            other => ProviderError::Other(format!("{other} ({what})")),
        }
    }
}

/// A cursor: `top:next:page`.
#[derive(Clone, Copy)]
struct Cursor {
    top: i64,
    next: i64,
    page: u64,
}

impl Cursor {
    fn parse(text: &str) -> Option<Self> {
        let mut it = text.split(':').map(str::parse::<i64>);
        let (Some(Ok(top)), Some(Ok(next)), Some(Ok(page)), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return None;
        };
        (top >= 0 && next >= -1 && next < top.max(1) && page >= 0).then_some(Cursor {
            top,
            next,
            page: page as u64,
        })
    }

    fn render(&self) -> String {
        format!("{}:{}:{}", self.top, self.next, self.page)
    }
}

/// One sync session over the scripted mailbox.
pub struct ScriptedSession {
    script: Script,
}

impl GuestSession for ScriptedSession {
    fn sync(&self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        // scripted-broken.wasm: a release gone wrong, for the automatic-rollback test.
        if option_env!("MAILROOM_PLUGIN_BROKEN").is_some() {
            panic!("this build of scripted is broken on purpose");
        }
        let s = &self.script;
        if !s.delay.is_zero() {
            std::thread::sleep(s.delay);
        }
        let start = Cursor {
            top: s.messages,
            next: s.messages - 1,
            page: 0,
        };
        let cursor = match cursor.as_deref() {
            None => start,
            Some(text) => Cursor::parse(text).ok_or(ProviderError::CursorExpired)?,
        };
        if cursor.top > s.messages {
            // The mailbox shrank under the cursor: like a new UIDVALIDITY.
            return Err(ProviderError::CursorExpired);
        }
        let page = cursor.page + 1;
        match s.injected(page) {
            // A message the host already recorded as failed is skipped.
            Some(ProviderError::MessageFailed(m)) if window.skip.contains(&m.id) => {}
            Some(err) => return Err(err),
            None => {}
        }
        let in_window = |i: i64| s.received_at(i) >= window.since;
        let skip = |i: i64| window.skip.iter().any(|id| id.ends_with(&format!(":{i}")));
        // New mail above `top` comes first, oldest of it first; then the backfill goes on down.
        let (indices, next_cursor) = if cursor.top < s.messages {
            let end = (cursor.top + s.page_size).min(s.messages);
            let next = Cursor {
                top: end,
                page,
                ..cursor
            };
            ((cursor.top..end).collect::<Vec<_>>(), next)
        } else {
            let low = (cursor.next - s.page_size + 1).max(0);
            let indices: Vec<i64> = (low..=cursor.next)
                .rev()
                .filter(|&i| in_window(i))
                .collect();
            let next = if low == 0 || !in_window(low - 1) {
                -1
            } else {
                low - 1
            };
            let next = Cursor {
                next,
                page,
                ..cursor
            };
            (indices, next)
        };
        let (bad, good): (Vec<i64>, Vec<i64>) = indices
            .into_iter()
            .filter(|&i| !skip(i))
            .partition(|i| s.bad.contains(i));
        let total = (0..s.messages).filter(|&i| in_window(i)).count() as u64;
        let done = (next_cursor.top - 1 - next_cursor.next).max(0) as u64;
        log::write(
            Level::Debug,
            &format!("page {page}: {} messages", good.len()),
        );
        Ok(Page {
            messages: good.iter().map(|&i| s.message(i)).collect(),
            deletions: vec![],
            failed: bad
                .iter()
                .map(|&i| MessageFailure {
                    id: s.message(i).id,
                    why: "scripted bad message".into(),
                })
                .collect(),
            cursor: next_cursor.render(),
            more: next_cursor.next >= 0 || next_cursor.top < s.messages,
            progress: Some(Progress {
                done: done.min(total),
                total: Some(total),
            }),
        })
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        let s = &self.script;
        let mut page = Page {
            messages: vec![],
            deletions: vec![],
            failed: vec![],
            cursor: String::new(),
            more: false,
            progress: None,
        };
        for id in ids {
            let index = id
                .rsplit_once(':')
                .and_then(|(_, i)| i.parse::<i64>().ok())
                .filter(|i| (0..s.messages).contains(i));
            match index {
                Some(i) if s.message(i).id == id && !s.bad.contains(&i) => {
                    page.messages.push(s.message(i))
                }
                _ => page.failed.push(MessageFailure {
                    id,
                    why: "no such message".into(),
                }),
            }
        }
        Ok(page)
    }
}

fn field(name: &str, label: &str, help: &str) -> Field {
    Field {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        secret: false,
        required: false,
        default_value: None,
    }
}

impl Guest for Scripted {
    type Session = ScriptedSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "scripted".into(),
            version: option_env!("MAILROOM_PLUGIN_VERSION")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .into(),
            description: "A mailbox described by its settings, for tests and benchmarks".into(),
            fields: vec![
                field(
                    "messages",
                    "Messages",
                    "How many messages the mailbox holds",
                ),
                field("page_size", "Page size", "Messages per page"),
                field("span_days", "Span (days)", "How far back the mail goes"),
                field("now", "Now", "Unix time of the newest message"),
                field("contacts", "Contacts", "Comma-separated correspondents"),
                field("fail", "Failures", "PAGE:KIND[:UNTIL], comma-separated"),
                field("bad", "Bad messages", "Indices reported as failed"),
                field("delay_ms", "Delay", "Milliseconds each sync call takes"),
                field("body_bytes", "Body size", "Approximate body size in bytes"),
                Field {
                    secret: true,
                    ..field("password", "Password", "Never read by this plugin")
                },
            ],
            // A version built with MAILROOM_PLUGIN_ENDPOINT declares one
            // endpoint the others do not: an upgrade that waits for approval.
            endpoints: option_env!("MAILROOM_PLUGIN_ENDPOINT")
                .map(|template| Endpoint {
                    template: template.into(),
                    purpose: "Reporting usage (a test of upgrades that widen the grant)".into(),
                    credential: None,
                })
                .into_iter()
                .collect(),
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        let script = Script::read(&account)?;
        match script.injected(0) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let script = Script::read(&account)?;
        Ok(Session::new(ScriptedSession { script }))
    }

    fn send(account: Account, message: Outgoing) -> Result<Option<String>, ProviderError> {
        let script = Script::read(&account)?;
        if message.recipients.is_empty() {
            return Err(bad_config("recipients", "name at least one recipient"));
        }
        Ok(Some(format!(
            "sent:{}:{}",
            script.address,
            message.raw.len()
        )))
    }
}

impl exports::mailroom::provider::bindings::Guest for Scripted {
    /// The password is never sent anywhere.
    fn secret_bindings() -> Vec<exports::mailroom::provider::bindings::Binding> {
        Vec::new()
    }
}

/// A Unix time as an RFC 2822 date (the HTTP form, `GMT`).
fn rfc2822(t: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64))
}

export!(Scripted);
