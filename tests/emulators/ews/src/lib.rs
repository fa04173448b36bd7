//! `ews-emulator`: the part of Exchange Web Services that Mailroom's Exchange
//! connector uses, with POX Autodiscover, served over loopback for tests.
//!
//! SOAP 1.1 on `POST /EWS/Exchange.asmx` with HTTP Basic sign-in (the
//! address, or a `DOMAIN\user` Exchange username): `ConvertId` (as clients
//! use it to learn the server's version), `GetFolder`, `FindItem` (paged,
//! restricted by `DateTimeReceived`), `GetItem` (with `MimeContent`),
//! `SyncFolderItems` (at most 512 changes a call; `SyncState` as the cursor)
//! and `CreateItem` (`SendAndSaveCopy` with `MimeContent`). POX Autodiscover
//! answers the EWS URL at `/autodiscover/autodiscover.xml`.
//!
//! It is held to Microsoft's description: every request it takes and every
//! answer it gives can be checked against the EWS schema kept beside it
//! (`schema/messages.xsd`, `schema/types.xsd`) — [`Emulator::exchanges`]
//! hands the test each request and answer body — and Python's `exchangelib`
//! drives it as a real client. Knobs: failures (503/ `ErrorServerBusy` with a
//! back-off), expired sync states, a password change. It must not be used
//! outside tests.

pub mod requests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use emulator_support::folders::{Change, Folders, Message};
use emulator_support::{Served, lock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use quick_xml::escape::escape;
use roxmltree::{Document, Node};

/// The messages namespace.
pub const M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// The types namespace.
pub const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The folders the emulator knows, by distinguished id.
pub const FOLDERS: [&str; 2] = ["inbox", "sentitems"];

/// A failure to answer instead of the next requests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `ErrorServerBusy` with a back-off in milliseconds (EWS throttling).
    Busy(u32),
    /// HTTP 503.
    Unavailable,
}

#[derive(Debug, Default)]
struct Mailbox {
    email: String,
    password: String,
    username: Option<String>,
    /// Its messages and their change log.
    store: Folders,
}

#[derive(Default)]
struct Inner {
    mailboxes: HashMap<String, Mailbox>,
    faults: VecDeque<Fault>,
    calls: BTreeMap<String, u64>,
    exchanges: Vec<(String, String)>,
    next: u64,
    redirects: HashMap<String, String>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    served: Served,
    state: Shared,
}

impl Emulator {
    /// Start on a free loopback port.
    pub async fn start() -> std::io::Result<Emulator> {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/EWS/Exchange.asmx", post(ews))
            .route("/autodiscover/autodiscover.xml", post(autodiscover))
            .with_state(state.clone());
        let served = Served::start(app).await?;
        Ok(Emulator { served, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.served.url()
    }

    /// The EWS endpoint.
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.url())
    }

    /// Create a mailbox that signs in with `password`, by address or by
    /// `username` (`DOMAIN\user`) when given.
    pub fn add_user(&self, email: &str, password: &str, username: Option<&str>) {
        lock(&self.state).mailboxes.insert(
            email.to_lowercase(),
            Mailbox {
                email: email.to_string(),
                password: password.to_string(),
                username: username.map(str::to_string),
                ..Mailbox::default()
            },
        );
    }

    /// Change a mailbox's password (the old one stops working).
    pub fn set_password(&self, email: &str, password: &str) {
        if let Some(m) = lock(&self.state).mailboxes.get_mut(&email.to_lowercase()) {
            m.password = password.to_string();
        }
    }

    /// Put a message in `inbox` or `sentitems`, received at `received_at`; its id.
    pub fn deliver(&self, email: &str, folder: &str, raw: &[u8], received_at: i64) -> String {
        let mut inner = lock(&self.state);
        inner.next += 1;
        let id = STANDARD.encode(format!("AAMkADEw-{:010}", inner.next));
        if let Some(m) = inner.mailboxes.get_mut(&email.to_lowercase()) {
            m.store.add(&id, folder, raw.to_vec(), received_at);
        }
        id
    }

    /// Delete a message. False when there is none.
    pub fn delete(&self, email: &str, id: &str) -> bool {
        let mut inner = lock(&self.state);
        let Some(m) = inner.mailboxes.get_mut(&email.to_lowercase()) else {
            return false;
        };
        m.store.delete(id)
    }

    /// The raw messages of a folder.
    pub fn messages(&self, email: &str, folder: &str) -> Vec<Vec<u8>> {
        lock(&self.state)
            .mailboxes
            .get(&email.to_lowercase())
            .map(|m| m.store.in_folder(folder).map(|x| x.raw.clone()).collect())
            .unwrap_or_default()
    }

    /// Play an unreachable server: while on, every connection is closed at once.
    pub fn set_offline(&self, offline: bool) {
        self.served.set_offline(offline);
    }

    /// Answer the next `count` requests with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let mut inner = lock(&self.state);
        for _ in 0..count {
            inner.faults.push_back(fault.clone());
        }
    }

    /// Answer Autodiscover requests that arrive for `host` with a 302 to `location`.
    pub fn redirect_autodiscover(&self, host: &str, location: &str) {
        lock(&self.state)
            .redirects
            .insert(host.to_lowercase(), location.to_string());
    }

    /// Every sync state issued so far becomes invalid.
    pub fn expire_sync_states(&self, email: &str) {
        if let Some(m) = lock(&self.state).mailboxes.get_mut(&email.to_lowercase()) {
            m.store.expire();
        }
    }

    /// How many calls each operation has answered.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.state).calls.clone()
    }

    /// Every (request, answer) SOAP body element so far, as standalone XML
    /// documents with their namespaces declared: for schema validation.
    pub fn exchanges(&self) -> Vec<(String, String)> {
        lock(&self.state).exchanges.clone()
    }
}

fn time(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"emulator\"")],
        "401 Unauthorized",
    )
        .into_response()
}

/// The mailbox the Basic credentials sign in to.
fn sign_in(inner: &Inner, headers: &HeaderMap) -> Option<String> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    inner
        .mailboxes
        .iter()
        .find(|(key, m)| {
            let named = user.eq_ignore_ascii_case(key)
                || m.username
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(user));
            named && m.password == password
        })
        .map(|(key, _)| key.clone())
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="{T}"/></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        envelope(&body),
    )
        .into_response()
}

/// One response message: `ResponseClass`, the code, and what follows it.
fn message(op: &str, class: &str, code: &str, text: Option<&str>, rest: &str) -> String {
    let text = text.map_or(String::new(), |t| {
        format!("<m:MessageText>{}</m:MessageText>", escape(t))
    });
    format!(
        "<m:{op}ResponseMessage ResponseClass=\"{class}\">{text}<m:ResponseCode>{code}</m:ResponseCode>{rest}</m:{op}ResponseMessage>"
    )
}

fn response(op: &str, messages: &str) -> String {
    format!(
        "<m:{op}Response xmlns:m=\"{M}\" xmlns:t=\"{T}\"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{op}Response>"
    )
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.tag_name().name() == name)
}

fn descendants<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.descendants()
        .filter(move |n| n.tag_name().name() == name)
}

fn folder_of(node: Node) -> Option<String> {
    descendants(node, "DistinguishedFolderId")
        .next()
        .and_then(|n| n.attribute("Id"))
        .map(str::to_string)
        .or_else(|| {
            descendants(node, "FolderId")
                .next()
                .and_then(|n| n.attribute("Id"))
                .map(|id| id.trim_start_matches("folder:").to_string())
        })
}

fn item_xml(m: &Message, mime: bool) -> String {
    let mime = if mime {
        format!(
            "<t:MimeContent CharacterSet=\"UTF-8\">{}</t:MimeContent>",
            STANDARD.encode(&m.raw)
        )
    } else {
        String::new()
    };
    let subject = subject(&m.raw);
    format!(
        "<t:Message>{mime}<t:ItemId Id=\"{id}\" ChangeKey=\"CQAAAA==\"/><t:ParentFolderId Id=\"folder:{folder}\" ChangeKey=\"AQAAAA==\"/><t:ItemClass>IPM.Note</t:ItemClass><t:Subject>{subject}</t:Subject><t:DateTimeReceived>{received}</t:DateTimeReceived><t:Size>{size}</t:Size><t:ConversationId Id=\"conv-{id}\"/><t:IsRead>{read}</t:IsRead></t:Message>",
        id = m.id,
        folder = m.folder,
        subject = escape(subject.as_str()),
        received = time(m.received),
        size = m.raw.len(),
        read = m.is_read,
    )
}

/// The Subject header's first line, for listings.
fn subject(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        .unwrap_or_default()
}

fn folder_xml(m: &Mailbox, folder: &str) -> String {
    let total = m.store.in_folder(folder).count();
    let unread = m.store.in_folder(folder).filter(|x| !x.is_read).count();
    let (name, class, children) = match folder {
        "inbox" => ("Inbox", "<t:FolderClass>IPF.Note</t:FolderClass>", 0),
        "sentitems" => ("Sent Items", "<t:FolderClass>IPF.Note</t:FolderClass>", 0),
        "msgfolderroot" => ("Top of Information Store", "", 2),
        _ => ("", "", 1),
    };
    format!(
        "<t:Folder><t:FolderId Id=\"folder:{folder}\" ChangeKey=\"AQAAAA==\"/>{class}<t:DisplayName>{name}</t:DisplayName><t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount><t:UnreadCount>{unread}</t:UnreadCount></t:Folder>"
    )
}

/// The request's body element as a document of its own, with the namespaces declared.
fn standalone(text: &str, node: Node) -> String {
    let fragment = &text[node.range()];
    let name_end = fragment
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(fragment.len());
    let mut out = String::with_capacity(fragment.len() + 200);
    out.push_str(&fragment[..name_end]);
    if !fragment.contains("xmlns:m=") {
        out.push_str(&format!(" xmlns:m=\"{M}\""));
    }
    if !fragment.contains("xmlns:t=") {
        out.push_str(&format!(" xmlns:t=\"{T}\""));
    }
    out.push_str(&fragment[name_end..]);
    out
}

async fn ews(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&state);
    if let Some(fault) = inner.faults.pop_front() {
        return match fault {
            Fault::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
            }
            Fault::Busy(ms) => {
                let text = format!(
                    "<m:FindItemResponse xmlns:m=\"{M}\" xmlns:t=\"{T}\"><m:ResponseMessages>{}</m:ResponseMessages></m:FindItemResponse>",
                    message(
                        "FindItem",
                        "Error",
                        "ErrorServerBusy",
                        Some("The server cannot service this request right now. Try again later."),
                        &format!(
                            "<m:MessageXml><t:Value Name=\"BackOffMilliseconds\">{ms}</t:Value></m:MessageXml>"
                        )
                    )
                );
                xml(text)
            }
        };
    }
    let Some(key) = sign_in(&inner, &headers) else {
        return unauthorized();
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let Ok(doc) = Document::parse(&text) else {
        return (StatusCode::BAD_REQUEST, "malformed XML").into_response();
    };
    let Some(request) = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Body" && n.tag_name().namespace() == Some(SOAP))
        .and_then(|b| b.children().find(|n| n.is_element()))
    else {
        return (StatusCode::BAD_REQUEST, "no SOAP body").into_response();
    };
    let op = request.tag_name().name().to_string();
    *inner.calls.entry(op.clone()).or_default() += 1;
    let answer = match inner.mailboxes.get_mut(&key) {
        Some(mailbox) => operation(mailbox, &op, request),
        None => return unauthorized(),
    };
    let Some(answer) = answer else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the emulator does not serve {op}"),
        )
            .into_response();
    };
    let asked = standalone(&text, request);
    inner.exchanges.push((asked, answer.clone()));
    xml(answer)
}

/// Answer one operation; `None` for one the emulator does not serve.
fn operation(m: &mut Mailbox, op: &str, request: Node) -> Option<String> {
    Some(match op {
        "ConvertId" => response(
            op,
            &message(
                op,
                "Error",
                "ErrorInvalidIdMalformed",
                Some("Id is malformed."),
                "",
            ),
        ),
        "GetFolder" => {
            let ids: Vec<String> = descendants(request, "DistinguishedFolderId")
                .filter_map(|n| n.attribute("Id").map(str::to_string))
                .collect();
            let messages: String = ids
                .iter()
                .map(|id| {
                    if FOLDERS.contains(&id.as_str())
                        || ["root", "msgfolderroot"].contains(&id.as_str())
                    {
                        message(
                            op,
                            "Success",
                            "NoError",
                            None,
                            &format!("<m:Folders>{}</m:Folders>", folder_xml(m, id)),
                        )
                    } else {
                        message(
                            op,
                            "Error",
                            "ErrorFolderNotFound",
                            Some("The specified folder could not be found in the store."),
                            "",
                        )
                    }
                })
                .collect();
            response(op, &messages)
        }
        "FindItem" => {
            let folder = folder_of(child(request, "ParentFolderIds")?).unwrap_or_default();
            if !FOLDERS.contains(&folder.as_str()) {
                return Some(response(
                    op,
                    &message(
                        op,
                        "Error",
                        "ErrorFolderNotFound",
                        Some("The specified folder could not be found in the store."),
                        "",
                    ),
                ));
            }
            let view = child(request, "IndexedPageItemView");
            let max: usize = view
                .and_then(|v| v.attribute("MaxEntriesReturned"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            let offset: usize = view
                .and_then(|v| v.attribute("Offset"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let since = descendants(request, "IsGreaterThanOrEqualTo")
                .find(|n| {
                    descendants(*n, "FieldURI")
                        .any(|f| f.attribute("FieldURI") == Some("item:DateTimeReceived"))
                })
                .and_then(|n| descendants(n, "Constant").next())
                .and_then(|c| c.attribute("Value"))
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map_or(i64::MIN, |t| t.timestamp());
            let mut found: Vec<&Message> = m
                .store
                .in_folder(&folder)
                .filter(|x| x.received >= since)
                .collect();
            found.sort_by(|a, b| b.received.cmp(&a.received).then(b.id.cmp(&a.id)));
            let page: String = found
                .iter()
                .skip(offset)
                .take(max)
                .map(|x| item_xml(x, false))
                .collect();
            let end = (offset + max).min(found.len());
            let last = end >= found.len();
            let root = format!(
                "<m:RootFolder IndexedPagingOffset=\"{end}\" TotalItemsInView=\"{}\" IncludesLastItemInRange=\"{last}\"><t:Items>{page}</t:Items></m:RootFolder>",
                found.len()
            );
            response(op, &message(op, "Success", "NoError", None, &root))
        }
        "GetItem" => {
            let mime = descendants(request, "IncludeMimeContent").any(|n| n.text() == Some("true"))
                || descendants(request, "FieldURI")
                    .any(|n| n.attribute("FieldURI") == Some("item:MimeContent"));
            let messages: String = descendants(request, "ItemId")
                .filter_map(|n| n.attribute("Id"))
                .map(|id| match m.store.messages.get(id) {
                    Some(x) => message(
                        op,
                        "Success",
                        "NoError",
                        None,
                        &format!("<m:Items>{}</m:Items>", item_xml(x, mime)),
                    ),
                    None => message(
                        op,
                        "Error",
                        "ErrorItemNotFound",
                        Some("The specified object was not found in the store."),
                        "<m:Items/>",
                    ),
                })
                .collect();
            response(op, &messages)
        }
        "SyncFolderItems" => {
            let folder = folder_of(child(request, "SyncFolderId")?).unwrap_or_default();
            let max: usize = child(request, "MaxChangesReturned")
                .and_then(|n| n.text())
                .and_then(|v| v.parse().ok())
                .unwrap_or(512)
                .min(512);
            let state = child(request, "SyncState")
                .and_then(|n| n.text())
                .unwrap_or("");
            let from: u64 = if state.is_empty() {
                0
            } else {
                match state.strip_prefix("emulator-").and_then(|s| s.parse().ok()) {
                    Some(seq) if seq >= m.store.oldest => seq,
                    _ => {
                        return Some(response(
                            op,
                            &message(
                                op,
                                "Error",
                                "ErrorInvalidSyncStateData",
                                Some("Synchronization state data is corrupt or otherwise invalid."),
                                "",
                            ),
                        ));
                    }
                }
            };
            let changes: Vec<&(u64, String, String, Change)> = m
                .store
                .log
                .iter()
                .filter(|(s, f, _, _)| *s > from && *f == folder)
                .collect();
            let (page, last) = if changes.len() > max {
                (&changes[..max], false)
            } else {
                (&changes[..], true)
            };
            let through = page.last().map_or(m.store.seq.max(from), |(s, _, _, _)| *s);
            let through = if last {
                m.store.seq.max(through)
            } else {
                through
            };
            let xml: String = page
                .iter()
                .map(|(_, _, id, change)| match (change, m.store.messages.get(id)) {
                    (Change::Added, Some(x)) => {
                        format!("<t:Create>{}</t:Create>", item_xml(x, false))
                    }
                    (Change::Added, None) | (Change::Removed, _) => {
                        format!(
                            "<t:Delete><t:ItemId Id=\"{id}\" ChangeKey=\"CQAAAA==\"/></t:Delete>"
                        )
                    }
                })
                .collect();
            let rest = format!(
                "<m:SyncState>emulator-{through}</m:SyncState><m:IncludesLastItemInRange>{last}</m:IncludesLastItemInRange><m:Changes>{xml}</m:Changes>"
            );
            response(op, &message(op, "Success", "NoError", None, &rest))
        }
        "CreateItem" => {
            let disposition = request
                .attribute("MessageDisposition")
                .unwrap_or("SaveOnly");
            let mime = descendants(request, "MimeContent")
                .next()
                .and_then(|n| n.text());
            let Some(raw) = mime.and_then(|t| STANDARD.decode(t.trim()).ok()) else {
                return Some(response(
                    op,
                    &message(
                        op,
                        "Error",
                        "ErrorMimeContentInvalid",
                        Some("The MIME content is not valid."),
                        "<m:Items/>",
                    ),
                ));
            };
            let folder = if disposition == "SaveOnly" {
                "drafts"
            } else {
                "sentitems"
            };
            let id = STANDARD.encode(format!("AAMkADEw-s{}", m.store.seq + 1));
            if disposition != "SendOnly" {
                m.store
                    .add(&id, folder, raw, chrono::Utc::now().timestamp());
            }
            response(op, &message(op, "Success", "NoError", None, "<m:Items/>"))
        }
        _ => return None,
    })
}

/// POX Autodiscover: the EWS URL for an address (Basic sign-in required).
async fn autodiscover(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&state);
    *inner.calls.entry("Autodiscover".into()).or_default() += 1;
    let arrived = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase();
    if let Some(location) = inner.redirects.get(&arrived) {
        return (StatusCode::FOUND, [(header::LOCATION, location.clone())]).into_response();
    }
    let Some(key) = sign_in(&inner, &headers) else {
        return unauthorized();
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let asked = Document::parse(&text)
        .ok()
        .and_then(|d| {
            d.descendants()
                .find(|n| n.tag_name().name() == "EMailAddress")
                .and_then(|n| n.text().map(str::to_string))
        })
        .unwrap_or_default();
    if !asked.eq_ignore_ascii_case(&key) {
        return (
            StatusCode::FORBIDDEN,
            "the signed-in user is not the address asked for",
        )
            .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if host.starts_with("127.0.0.1") {
        "http"
    } else {
        "https"
    };
    let email = inner
        .mailboxes
        .get(&key)
        .map(|m| m.email.clone())
        .unwrap_or_default();
    let answer = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><User><DisplayName>{email}</DisplayName><AutoDiscoverSMTPAddress>{email}</AutoDiscoverSMTPAddress></User><Account><AccountType>email</AccountType><Action>settings</Action><Protocol><Type>EXCH</Type><EwsUrl>{scheme}://{host}/EWS/Exchange.asmx</EwsUrl></Protocol></Account></Response></Autodiscover>"#
    );
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], answer).into_response()
}
