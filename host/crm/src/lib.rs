//! `mailroom-crm`: the CRM's objects and the mail stored against them.
//!
//! Users, contacts (several addresses each), deals, connected accounts with
//! their sealed credentials, the stored messages with their sources and
//! links, the compact header index, the scores of the sentiment analyser, and
//! the two rules the product is about:
//! **matching** (which contacts and deals a message belongs to, under the
//! account's scope) and **visibility** (who may read it). Each module owns
//! its tables and is the only code that writes them. This crate does not
//! talk to plugins or schedule anything: `mailroom-sync` hands it parsed
//! pages inside a transaction it commits.

pub mod accounts;
pub mod campaigns;
pub mod contacts;
pub mod deals;
mod error;
pub mod generation;
pub mod index;
pub mod messages;
pub mod sentiment;
pub mod timeline;
pub mod users;

pub use error::CrmError;

/// Ids are 63-bit integers made by the host (`mailroom_store::next_id`).
pub type Id = i64;

/// An enum's serde name, as stored in a TEXT column.
pub(crate) fn enum_text<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An enum back from its stored serde name; `field` names the column in errors.
pub(crate) fn enum_parse<T: for<'de> serde::Deserialize<'de>>(
    field: &str,
    s: String,
) -> Result<T, CrmError> {
    serde_json::from_value(serde_json::Value::String(s)).map_err(|e| CrmError::Invalid {
        field: field.into(),
        why: e.to_string(),
    })
}

/// Delete the CRM row `id` of `table` (`contacts` or `deals`) and mark the
/// CRM changed, in one transaction; `what` names the object in errors.
pub(crate) async fn delete_crm_row(
    db: &mailroom_store::Db,
    table: &'static str,
    what: &'static str,
    id: Id,
) -> Result<(), CrmError> {
    let mut tx = db.begin().await?;
    let done = mailroom_store::sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(CrmError::not_found(what, id));
    }
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The row of `table` that has the CRM's `external_id`, for bulk imports.
pub(crate) async fn by_external_id(
    tx: &mut mailroom_store::Tx,
    table: &'static str,
    external_id: Option<&str>,
) -> Result<Option<Id>, CrmError> {
    let Some(ext) = external_id else {
        return Ok(None);
    };
    Ok(mailroom_store::sqlx::query_scalar(&format!(
        "SELECT id FROM {table} WHERE external_id = $1"
    ))
    .bind(ext)
    .fetch_optional(&mut **tx)
    .await?)
}
