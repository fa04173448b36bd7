//! Exchange Web Services: the SOAP requests the connector sends (each shaped
//! as Microsoft's EWS schema says; the emulator's tests check these very
//! shapes), POX Autodiscover, and the answers read back with roxmltree.
//! Errors are worded as the product's help page words them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use mailroom_plugin_sdk::http::{self, Failure};
use quick_xml::escape::escape;
use roxmltree::{Document, Node};
use wstd::http::{Client, Method};

use crate::bindings::mailroom::provider::types::{ConfigError, ProviderError};

const M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// What the login failure says.
pub const LOGIN_FAILED: &str = "The login failed: check the password (use an app password where two-step verification is on); if your organisation signs in with a Windows username, enter it (DOMAIN\\user) as the Exchange username";
/// What an unreachable server says.
pub const UNREACHABLE: &str = "The Exchange server could not be reached: check the Exchange server name; a server that is only reachable over a VPN cannot be used";

fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

/// A transport or HTTP failure, as the help page words it.
pub fn into_error(failure: Failure) -> ProviderError {
    match failure {
        Failure::Status { status: 401, .. } | Failure::Status { status: 403, .. } => {
            ProviderError::AuthFailed(LOGIN_FAILED.into())
        }
        Failure::Status {
            status,
            retry_after: Some(secs),
            ..
        } if status == 429 || status >= 500 => ProviderError::RateLimited(secs),
        Failure::Status { status, .. } if status >= 500 => {
            ProviderError::Unreachable(format!("{UNREACHABLE} (it answered {status})"))
        }
        Failure::Status { status, body, .. } => ProviderError::Other(format!(
            "Exchange answered {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )),
        Failure::Transport(why) | Failure::NoSuchHost(why) => {
            ProviderError::Unreachable(format!("{UNREACHABLE} ({why})"))
        }
        Failure::Decode(why) => ProviderError::Other(why),
    }
}

/// One message as EWS describes it.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub mime: Option<Vec<u8>>,
    pub received: Option<i64>,
    pub conversation: Option<String>,
    pub is_read: bool,
}

/// What one response message said.
pub struct Answer {
    /// The items it carried (`Items`, `Changes/Create`).
    pub items: Vec<Item>,
    /// Ids deleted (`Changes/Delete`).
    pub deleted: Vec<String>,
    /// `SyncState`.
    pub sync_state: Option<String>,
    /// `IncludesLastItemInRange` (FindItem's attribute or SyncFolderItems' element).
    pub last: bool,
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.tag_name().name() == name)
}

fn item(node: Node) -> Option<Item> {
    let id = child(node, "ItemId")?.attribute("Id")?.to_string();
    let mime = child(node, "MimeContent")
        .and_then(|n| n.text())
        .and_then(|t| STANDARD.decode(t.trim()).ok());
    let received = child(node, "DateTimeReceived")
        .and_then(|n| n.text())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp());
    Some(Item {
        id,
        mime,
        received,
        conversation: child(node, "ConversationId")
            .and_then(|n| n.attribute("Id"))
            .map(str::to_string),
        is_read: child(node, "IsRead").and_then(|n| n.text()) == Some("true"),
    })
}

/// Read the response messages of a SOAP answer. An `Error` message is the
/// typed error it stands for; for GetItem, an item that is gone is left out.
pub fn read(text: &str) -> Result<Answer, ProviderError> {
    let doc = Document::parse(text)
        .map_err(|e| ProviderError::Other(format!("Exchange's answer is not XML: {e}")))?;
    let mut answer = Answer {
        items: Vec::new(),
        deleted: Vec::new(),
        sync_state: None,
        last: true,
    };
    let messages = doc.descendants().filter(|n| {
        n.tag_name().name().ends_with("ResponseMessage") && n.attribute("ResponseClass").is_some()
    });
    for m in messages {
        if m.attribute("ResponseClass") == Some("Error") {
            let code = child(m, "ResponseCode")
                .and_then(|n| n.text())
                .unwrap_or("");
            let text = child(m, "MessageText").and_then(|n| n.text()).unwrap_or("");
            match code {
                "ErrorItemNotFound" => continue,
                "ErrorInvalidSyncStateData" | "ErrorInvalidSyncStateDataOrSyncStateNotFound" => {
                    return Err(ProviderError::CursorExpired);
                }
                "ErrorServerBusy" => {
                    let ms: u64 = m
                        .descendants()
                        .find(|n| n.attribute("Name") == Some("BackOffMilliseconds"))
                        .and_then(|n| n.text())
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(30_000);
                    return Err(ProviderError::RateLimited(ms.div_ceil(1000).max(1) as u32));
                }
                "ErrorFolderNotFound" => {
                    return Err(bad_config(
                        "folders",
                        format!("the mailbox has no such folder ({text})"),
                    ));
                }
                _ => {
                    return Err(ProviderError::Other(format!(
                        "Exchange said {code}: {text}"
                    )));
                }
            }
        }
        if let Some(state) = child(m, "SyncState").and_then(|n| n.text()) {
            answer.sync_state = Some(state.to_string());
        }
        if let Some(last) = child(m, "IncludesLastItemInRange").and_then(|n| n.text()) {
            answer.last = last == "true";
        }
        if let Some(root) = child(m, "RootFolder") {
            answer.last = root.attribute("IncludesLastItemInRange") == Some("true");
        }
        for n in m.descendants() {
            match n.tag_name().name() {
                "Message" => answer.items.extend(item(n)),
                "Delete" => answer.deleted.extend(
                    child(n, "ItemId")
                        .and_then(|i| i.attribute("Id"))
                        .map(str::to_string),
                ),
                _ => {}
            }
        }
    }
    Ok(answer)
}

/// A folder, as EWS names it.
fn folder(id: &str) -> String {
    format!(r#"<t:DistinguishedFolderId Id="{}"/>"#, escape(id))
}

/// `FindItem`: ids received since `since`, newest first, a page at `offset`.
pub fn find_item(folder_id: &str, since: i64, offset: usize, max: usize) -> String {
    let since = DateTime::from_timestamp(since, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:DateTimeReceived"/></t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="{max}" Offset="{offset}" BasePoint="Beginning"/><m:Restriction><t:IsGreaterThanOrEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant><t:Constant Value="{since}"/></t:FieldURIOrConstant></t:IsGreaterThanOrEqualTo></m:Restriction><m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder></m:SortOrder><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
        folder(folder_id)
    )
}

/// `GetItem` with the MIME of each.
pub fn get_item(ids: &[String]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| format!(r#"<t:ItemId Id="{}"/>"#, escape(id.as_str())))
        .collect();
    format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:ConversationId"/><t:FieldURI FieldURI="message:IsRead"/></t:AdditionalProperties></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"#
    )
}

/// `SyncFolderItems` from `state` (none: from the start), at most `max` changes.
pub fn sync_folder_items(folder_id: &str, state: Option<&str>, max: usize) -> String {
    let state = state.map_or(String::new(), |s| {
        format!("<m:SyncState>{}</m:SyncState>", escape(s))
    });
    format!(
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"#,
        folder(folder_id)
    )
}

/// `CreateItem` sending MIME with a copy saved in Sent Items.
pub fn create_item(mime: &[u8]) -> String {
    format!(
        r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:SavedItemFolderId><t:DistinguishedFolderId Id="sentitems"/></m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{}</t:MimeContent></t:Message></m:Items></m:CreateItem>"#,
        STANDARD.encode(mime)
    )
}

/// `GetFolder` of the inbox: a sign-in check.
pub fn get_folder() -> String {
    format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>"#,
        folder("inbox")
    )
}

/// A client of one EWS endpoint (the host attaches Basic credentials).
pub struct Ews {
    client: Client,
    url: String,
}

impl Ews {
    /// A client of `url`.
    pub fn new(url: String) -> Self {
        Ews {
            client: Client::new(),
            url,
        }
    }

    /// Send one operation and read its answer.
    pub async fn call(&self, body: &str) -> Result<Answer, ProviderError> {
        let envelope = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{M}" xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2013"/></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        );
        let headers = [("content-type", "text/xml; charset=utf-8")];
        let (_, bytes) = http::send(
            &self.client,
            Method::POST,
            &self.url,
            &headers,
            Some(envelope.into_bytes()),
        )
        .await
        .map_err(into_error)?;
        read(&String::from_utf8_lossy(&bytes))
    }
}

/// The host of an `https://` URL, lower-cased; `None` for anything else.
pub fn https_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.split(['/', '?']).next()?.to_lowercase();
    (!host.is_empty()).then_some(host)
}

/// POX Autodiscover for `address`, starting at `https://<host>`: the EWS URL,
/// if found; `None` where there is no such host or no Autodiscover answer,
/// `unreachable` where the host is there but does not answer (so an outage is
/// retried, not taken for a missing setting). Redirects are followed only
/// onto the `allowed` hosts (the ones the plugin is granted); a redirect
/// elsewhere asks for the server.
pub async fn autodiscover(
    host: &str,
    address: &str,
    allowed: &[String],
) -> Result<Option<String>, ProviderError> {
    let mut url = format!("https://{host}/autodiscover/autodiscover.xml");
    let request = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#,
        escape(address)
    );
    let headers = [("content-type", "text/xml; charset=utf-8")];
    for _hop in 0..5 {
        let sent = http::send(
            &Client::new(),
            Method::POST,
            &url,
            &headers,
            Some(request.clone().into_bytes()),
        )
        .await;
        match sent {
            Ok((_, bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                let doc = Document::parse(&text).ok();
                return Ok(doc.and_then(|d| {
                    d.descendants()
                        .find(|n| n.tag_name().name() == "EwsUrl")
                        .and_then(|n| n.text())
                        .map(|t| t.trim().to_string())
                }));
            }
            Err(Failure::Status { status: 401, .. }) => {
                return Err(ProviderError::AuthFailed(LOGIN_FAILED.into()));
            }
            Err(Failure::Status {
                status: 301 | 302 | 307 | 308,
                location: Some(next),
                ..
            }) => match https_host(&next) {
                Some(h) if allowed.contains(&h) => url = next,
                _ => {
                    return Err(bad_config(
                        "exchange_server",
                        format!("Autodiscover sent us on to {next}: enter the Exchange server"),
                    ));
                }
            },
            // A host that refuses or drops the connection is down, not absent.
            Err(Failure::Transport(why)) => {
                return Err(ProviderError::Unreachable(format!("{UNREACHABLE} ({why})")));
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_hosts_are_taken_from_urls() {
        assert_eq!(
            https_host("https://Mail.Contoso.test/EWS/Exchange.asmx"),
            Some("mail.contoso.test".into())
        );
        assert_eq!(https_host("http://mail.contoso.test/"), None);
        assert_eq!(https_host("https:///x"), None);
    }

    #[test]
    fn answers_and_errors_are_read() {
        let ok = format!(
            r#"<s:Envelope xmlns:s="x"><s:Body><m:SyncFolderItemsResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>s2</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes><t:Create><t:Message><t:ItemId Id="a"/></t:Message></t:Create><t:Delete><t:ItemId Id="b"/></t:Delete></m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse></s:Body></s:Envelope>"#
        );
        let a = read(&ok)
            .map_err(|_| ())
            .unwrap_or_else(|()| panic!("readable"));
        assert_eq!(a.items.len(), 1);
        assert_eq!(a.deleted, ["b"]);
        assert_eq!(a.sync_state.as_deref(), Some("s2"));
        assert!(!a.last);
        let err = |code: &str, extra: &str| {
            read(&format!(
                r#"<r><m:XResponseMessage xmlns:m="{M}" ResponseClass="Error"><m:MessageText>t</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>{extra}</m:XResponseMessage></r>"#
            ))
        };
        assert!(matches!(
            err("ErrorInvalidSyncStateData", ""),
            Err(ProviderError::CursorExpired)
        ));
        let busy = err(
            "ErrorServerBusy",
            r#"<m:MessageXml><t:Value xmlns:t="x" Name="BackOffMilliseconds">2500</t:Value></m:MessageXml>"#,
        );
        assert!(matches!(busy, Err(ProviderError::RateLimited(3))));
        assert!(matches!(
            into_error(Failure::Status {
                status: 401,
                retry_after: None,
                body: vec![],
                location: None,
            }),
            ProviderError::AuthFailed(_)
        ));
        assert!(matches!(
            into_error(Failure::Transport("refused".into())),
            ProviderError::Unreachable(_)
        ));
    }
}
