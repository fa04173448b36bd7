//! The requests an EWS client such as Mailroom's Exchange connector sends,
//! shaped as Microsoft's schema says (the emulator's tests validate them),
//! for the tests and the benchmark to send.

use crate::{M, T};

/// A SOAP envelope around a body element.
pub fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{M}" xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2013"/></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

/// The body element as a document of its own, for the schema.
pub fn standalone(body: &str) -> String {
    let end = body
        .find(|c: char| c.is_whitespace() || c == '>')
        .unwrap_or(body.len());
    format!(
        "{} xmlns:m=\"{M}\" xmlns:t=\"{T}\"{}",
        &body[..end],
        &body[end..]
    )
}

/// `FindItem`: ids received since `since`, newest first, a page at `offset`.
pub fn find_item(folder: &str, since: &str, offset: usize, max: usize) -> String {
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:DateTimeReceived"/></t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="{max}" Offset="{offset}" BasePoint="Beginning"/><m:Restriction><t:IsGreaterThanOrEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant><t:Constant Value="{since}"/></t:FieldURIOrConstant></t:IsGreaterThanOrEqualTo></m:Restriction><m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder></m:SortOrder><m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/></m:ParentFolderIds></m:FindItem>"#
    )
}

/// `GetItem` with the MIME of each.
pub fn get_item(ids: &[&str]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| format!(r#"<t:ItemId Id="{id}"/>"#))
        .collect();
    format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:ConversationId"/><t:FieldURI FieldURI="message:IsRead"/></t:AdditionalProperties></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"#
    )
}

/// `SyncFolderItems` from `state` (empty: from the start), at most `max` changes.
pub fn sync(folder: &str, state: &str, max: usize) -> String {
    let state = if state.is_empty() {
        String::new()
    } else {
        format!("<m:SyncState>{state}</m:SyncState>")
    };
    format!(
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"#
    )
}

/// `CreateItem` sending MIME with a copy saved in Sent Items.
pub fn create_item(mime_b64: &str) -> String {
    format!(
        r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:SavedItemFolderId><t:DistinguishedFolderId Id="sentitems"/></m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{mime_b64}</t:MimeContent></t:Message></m:Items></m:CreateItem>"#
    )
}
