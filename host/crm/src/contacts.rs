//! Contacts and their addresses. Owns `contacts` and `contact_emails`.

use std::collections::BTreeMap;

use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, Tx, next_id, unix_now};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CrmError, Id, by_external_id, delete_crm_row, generation};

/// A contact.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    /// Id.
    pub id: Id,
    /// Name.
    pub name: String,
    /// Addresses, normalised, sorted.
    pub emails: Vec<String>,
    /// The pushing CRM's own id, unique.
    pub external_id: Option<String>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last changed (Unix seconds).
    pub updated_at: i64,
}

/// A contact to create, or the fields to change (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Name (required on create unless an address is given).
    pub name: Option<String>,
    /// Addresses; replaces the stored list when given.
    pub emails: Option<Vec<String>>,
    /// The pushing CRM's id; bulk import updates the contact that has it.
    pub external_id: Option<String>,
}

struct Clean {
    name: Option<String>,
    emails: Option<Vec<String>>,
    external_id: Option<String>,
}

fn clean(input: &ContactInput, prefix: &str) -> Result<Clean, CrmError> {
    let emails = match &input.emails {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, raw) in list.iter().enumerate() {
                let a = mailroom_mail::normalize_address(raw).ok_or_else(|| {
                    CrmError::invalid(
                        &format!("{prefix}emails[{i}]"),
                        format!("`{raw}` is not an email address"),
                    )
                })?;
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            out.sort();
            Some(out)
        }
    };
    let name = input.name.as_ref().map(|n| n.trim().to_string());
    if name.as_deref().is_some_and(|n| n.chars().count() > 500) {
        return Err(CrmError::invalid(
            &format!("{prefix}name"),
            "is longer than 500 characters",
        ));
    }
    let external_id = input
        .external_id
        .as_ref()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    Ok(Clean {
        name,
        emails,
        external_id,
    })
}

async fn write_emails(tx: &mut Tx, id: Id, emails: &[String]) -> Result<(), CrmError> {
    sqlx::query("DELETE FROM contact_emails WHERE contact_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for a in emails {
        sqlx::query("INSERT INTO contact_emails (contact_id, address) VALUES ($1, $2)")
            .bind(id)
            .bind(a)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert(tx: &mut Tx, c: Clean, prefix: &str) -> Result<Id, CrmError> {
    let emails = c.emails.unwrap_or_default();
    let name = c
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| emails.first().cloned())
        .ok_or_else(|| CrmError::invalid(&format!("{prefix}name"), "give a name or an address"))?;
    let id = next_id();
    let now = unix_now();
    sqlx::query(
        "INSERT INTO contacts (id, name, external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(name)
    .bind(c.external_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(CrmError::external_id_taken(prefix, "contact"))?;
    write_emails(tx, id, &emails).await?;
    Ok(id)
}

async fn apply(tx: &mut Tx, id: Id, c: Clean, prefix: &str) -> Result<(), CrmError> {
    let found = sqlx::query("SELECT id FROM contacts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if found.is_none() {
        return Err(CrmError::not_found("contact", id));
    }
    if let Some(name) = c.name {
        if name.is_empty() {
            return Err(CrmError::invalid(
                &format!("{prefix}name"),
                "must not be empty",
            ));
        }
        sqlx::query("UPDATE contacts SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(ext) = c.external_id {
        sqlx::query("UPDATE contacts SET external_id = $1 WHERE id = $2")
            .bind(ext)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(CrmError::external_id_taken(prefix, "contact"))?;
    }
    if let Some(emails) = c.emails {
        write_emails(tx, id, &emails).await?;
    }
    sqlx::query("UPDATE contacts SET updated_at = $1 WHERE id = $2")
        .bind(unix_now())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Create a contact.
pub async fn create(db: &Db, input: &ContactInput) -> Result<Contact, CrmError> {
    let c = clean(input, "")?;
    let mut tx = db.begin().await?;
    let id = insert(&mut tx, c, "").await?;
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Change a contact: the fields given replace the stored ones.
pub async fn update(db: &Db, id: Id, input: &ContactInput) -> Result<Contact, CrmError> {
    let c = clean(input, "")?;
    let mut tx = db.begin().await?;
    apply(&mut tx, id, c, "").await?;
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Delete a contact; its links go with it, its deals lose it.
pub async fn delete(db: &Db, id: Id) -> Result<(), CrmError> {
    delete_crm_row(db, "contacts", "contact", id).await
}

/// Create or update many contacts at once, all or none: an item with an
/// `external_id` already stored updates that contact. Errors name the
/// item (`contacts[3].emails[0]`).
pub async fn import(db: &Db, items: &[ContactInput]) -> Result<Vec<Id>, CrmError> {
    let cleaned = items
        .iter()
        .enumerate()
        .map(|(i, item)| clean(item, &format!("contacts[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = db.begin().await?;
    let mut ids = Vec::with_capacity(cleaned.len());
    for (i, c) in cleaned.into_iter().enumerate() {
        let prefix = format!("contacts[{i}].");
        let existing = by_external_id(&mut tx, "contacts", c.external_id.as_deref()).await?;
        let id = match existing {
            Some(id) => {
                apply(&mut tx, id, c, &prefix).await?;
                id
            }
            None => insert(&mut tx, c, &prefix).await?,
        };
        ids.push(id);
    }
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(ids)
}

/// A contact by id.
pub async fn get(db: &Db, id: Id) -> Result<Contact, CrmError> {
    select(db, Some(id), 1, 0)
        .await?
        .pop()
        .ok_or_else(|| CrmError::not_found("contact", id))
}

/// Contacts by id, `limit` from `offset`.
pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<Contact>, CrmError> {
    select(db, None, limit, offset).await
}

/// Contacts (one, or a page of all) with their addresses, in two queries.
async fn select(
    db: &Db,
    id: Option<Id>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Contact>, CrmError> {
    let rows = sqlx::query(
        "SELECT id, name, external_id, created_at, updated_at FROM contacts \
         WHERE ($1 = 0 OR id = $2) ORDER BY id LIMIT $3 OFFSET $4",
    )
    .bind(i64::from(id.is_some()))
    .bind(id.unwrap_or(0))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let mut contacts = Vec::with_capacity(rows.len());
    let mut by_id = BTreeMap::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        by_id.insert(id, contacts.len());
        contacts.push(Contact {
            id,
            name: row.try_get("name")?,
            emails: vec![],
            external_id: row.try_get("external_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    if let (Some(first), Some(last)) = (contacts.first(), contacts.last()) {
        let rows = sqlx::query(
            "SELECT contact_id, address FROM contact_emails WHERE contact_id >= $1 AND contact_id <= $2 \
             ORDER BY address",
        )
        .bind(first.id)
        .bind(last.id)
        .fetch_all(db.pool())
        .await?;
        for row in rows {
            let id: i64 = row.try_get("contact_id")?;
            if let Some(&i) = by_id.get(&id) {
                contacts[i].emails.push(row.try_get("address")?);
            }
        }
    }
    Ok(contacts)
}
