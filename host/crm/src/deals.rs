//! Deals: title, value, status, owner, primary and other contacts. Owns
//! `deals` and `deal_contacts`.

use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, Tx, next_id, unix_now};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CrmError, Id, by_external_id, delete_crm_row, generation};

/// Where a deal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Still being worked.
    Open,
    /// Won.
    Won,
    /// Lost.
    Lost,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Won => "won",
            Status::Lost => "lost",
        }
    }

    /// The status stored as text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Status::Open),
            "won" => Some(Status::Won),
            "lost" => Some(Status::Lost),
            _ => None,
        }
    }
}

/// A deal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deal {
    /// Id.
    pub id: Id,
    /// Title.
    pub title: String,
    /// Value in the currency's major unit (two decimals kept).
    pub value: f64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Status.
    pub status: Status,
    /// The user who owns the deal.
    pub owner_id: Option<Id>,
    /// The primary contact.
    pub primary_contact_id: Option<Id>,
    /// Other contacts on the deal.
    pub contact_ids: Vec<Id>,
    /// The pushing CRM's own id, unique.
    pub external_id: Option<String>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last changed (Unix seconds).
    pub updated_at: i64,
}

/// A deal to create, or the fields to change (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    /// Title (required on create).
    pub title: Option<String>,
    /// Value, at least 0.
    pub value: Option<f64>,
    /// Currency code, three letters (default EUR).
    pub currency: Option<String>,
    /// Status (default open).
    pub status: Option<Status>,
    /// Owner's user id; `null` removes the owner.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub owner_id: Option<Option<Id>>,
    /// Primary contact's id; `null` removes the primary contact.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub primary_contact_id: Option<Option<Id>>,
    /// Other contacts' ids; replaces the stored list when given.
    pub contact_ids: Option<Vec<Id>>,
    /// The pushing CRM's id; bulk import updates the deal that has it.
    pub external_id: Option<String>,
}

/// A field that may be given as `null`: absent stays `None`, `null` is
/// `Some(None)` (clear it), a value is `Some(Some(v))`.
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

async fn check(tx: &mut Tx, input: &DealInput, prefix: &str) -> Result<(), CrmError> {
    if let Some(v) = input.value
        && !(0.0..1e15).contains(&v)
    {
        return Err(CrmError::invalid(
            &format!("{prefix}value"),
            "must be a number from 0 up",
        ));
    }
    if let Some(c) = &input.currency
        && !(c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        return Err(CrmError::invalid(
            &format!("{prefix}currency"),
            format!("`{c}` is not a three-letter currency code"),
        ));
    }
    if let Some(t) = &input.title
        && t.trim().is_empty()
    {
        return Err(CrmError::invalid(
            &format!("{prefix}title"),
            "must not be empty",
        ));
    }
    if let Some(Some(owner)) = input.owner_id {
        let found = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(owner)
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_none() {
            return Err(CrmError::invalid(
                &format!("{prefix}owner_id"),
                format!("no user {owner}"),
            ));
        }
    }
    let contacts = input
        .primary_contact_id
        .flatten()
        .into_iter()
        .map(|c| (format!("{prefix}primary_contact_id"), c))
        .chain(
            input
                .contact_ids
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, &c)| (format!("{prefix}contact_ids[{i}]"), c)),
        );
    for (field, id) in contacts {
        let found = sqlx::query("SELECT id FROM contacts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_none() {
            return Err(CrmError::invalid(&field, format!("no contact {id}")));
        }
    }
    Ok(())
}

fn cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

async fn insert(tx: &mut Tx, input: &DealInput, prefix: &str) -> Result<Id, CrmError> {
    let title = input
        .title
        .as_deref()
        .map(str::trim)
        .ok_or_else(|| CrmError::invalid(&format!("{prefix}title"), "is required"))?;
    let id = next_id();
    let now = unix_now();
    sqlx::query(
        "INSERT INTO deals (id, title, value_cents, currency, status, owner_id, primary_contact_id, \
         external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(id)
    .bind(title)
    .bind(cents(input.value.unwrap_or(0.0)))
    .bind(input.currency.as_deref().unwrap_or("EUR").to_ascii_uppercase())
    .bind(input.status.unwrap_or(Status::Open).as_str())
    .bind(input.owner_id.flatten())
    .bind(input.primary_contact_id.flatten())
    .bind(input.external_id.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(CrmError::external_id_taken(prefix, "deal"))?;
    write_contacts(tx, id, input.contact_ids.as_deref().unwrap_or_default()).await?;
    Ok(id)
}

async fn write_contacts(tx: &mut Tx, id: Id, contacts: &[Id]) -> Result<(), CrmError> {
    sqlx::query("DELETE FROM deal_contacts WHERE deal_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for c in contacts {
        sqlx::query(
            "INSERT INTO deal_contacts (deal_id, contact_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(c)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn apply(tx: &mut Tx, id: Id, input: &DealInput, prefix: &str) -> Result<(), CrmError> {
    let found = sqlx::query("SELECT id FROM deals WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if found.is_none() {
        return Err(CrmError::not_found("deal", id));
    }
    // COALESCE keeps what was not given; the owner and primary contact are
    // set (possibly to NULL) only when given ($5, $7 say whether).
    sqlx::query(
        "UPDATE deals SET title = COALESCE($1, title), value_cents = COALESCE($2, value_cents), \
         currency = COALESCE($3, currency), status = COALESCE($4, status), \
         owner_id = CASE WHEN $5 = 1 THEN $6 ELSE owner_id END, \
         primary_contact_id = CASE WHEN $7 = 1 THEN $8 ELSE primary_contact_id END, \
         external_id = COALESCE($9, external_id), updated_at = $10 WHERE id = $11",
    )
    .bind(input.title.as_deref().map(str::trim))
    .bind(input.value.map(cents))
    .bind(input.currency.as_deref().map(str::to_ascii_uppercase))
    .bind(input.status.map(Status::as_str))
    .bind(i64::from(input.owner_id.is_some()))
    .bind(input.owner_id.flatten())
    .bind(i64::from(input.primary_contact_id.is_some()))
    .bind(input.primary_contact_id.flatten())
    .bind(input.external_id.as_deref())
    .bind(unix_now())
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(CrmError::external_id_taken(prefix, "deal"))?;
    if let Some(contacts) = &input.contact_ids {
        write_contacts(tx, id, contacts).await?;
    }
    Ok(())
}

/// Create a deal.
pub async fn create(db: &Db, input: &DealInput) -> Result<Deal, CrmError> {
    let mut tx = db.begin().await?;
    check(&mut tx, input, "").await?;
    let id = insert(&mut tx, input, "").await?;
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Change a deal: the fields given replace the stored ones.
pub async fn update(db: &Db, id: Id, input: &DealInput) -> Result<Deal, CrmError> {
    let mut tx = db.begin().await?;
    check(&mut tx, input, "").await?;
    apply(&mut tx, id, input, "").await?;
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Delete a deal; its links go with it.
pub async fn delete(db: &Db, id: Id) -> Result<(), CrmError> {
    delete_crm_row(db, "deals", "deal", id).await
}

/// Create or update many deals at once, all or none; an item whose
/// `external_id` is stored updates that deal. Errors name the item (`deals[2].title`).
pub async fn import(db: &Db, items: &[DealInput]) -> Result<Vec<Id>, CrmError> {
    let mut tx = db.begin().await?;
    let mut ids = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("deals[{i}].");
        check(&mut tx, item, &prefix).await?;
        let existing = by_external_id(&mut tx, "deals", item.external_id.as_deref()).await?;
        let id = match existing {
            Some(id) => {
                apply(&mut tx, id, item, &prefix).await?;
                id
            }
            None => insert(&mut tx, item, &prefix).await?,
        };
        ids.push(id);
    }
    generation::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(ids)
}

/// A deal by id.
pub async fn get(db: &Db, id: Id) -> Result<Deal, CrmError> {
    select(db, Some(id), 1, 0)
        .await?
        .pop()
        .ok_or_else(|| CrmError::not_found("deal", id))
}

/// Deals by id, `limit` from `offset`.
pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<Deal>, CrmError> {
    select(db, None, limit, offset).await
}

/// Deals (one, or a page of all) with their other contacts, in two queries.
async fn select(db: &Db, id: Option<Id>, limit: i64, offset: i64) -> Result<Vec<Deal>, CrmError> {
    let rows = sqlx::query(
        "SELECT id, title, value_cents, currency, status, owner_id, primary_contact_id, external_id, \
         created_at, updated_at FROM deals WHERE ($1 = 0 OR id = $2) ORDER BY id LIMIT $3 OFFSET $4",
    )
    .bind(i64::from(id.is_some()))
    .bind(id.unwrap_or(0))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let mut deals = Vec::with_capacity(rows.len());
    for row in &rows {
        let status: String = row.try_get("status")?;
        deals.push(Deal {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            value: row.try_get::<i64, _>("value_cents")? as f64 / 100.0,
            currency: row.try_get("currency")?,
            status: Status::parse(&status).ok_or_else(|| {
                CrmError::invalid("status", format!("stored `{status}` is unknown"))
            })?,
            owner_id: row.try_get("owner_id")?,
            primary_contact_id: row.try_get("primary_contact_id")?,
            contact_ids: vec![],
            external_id: row.try_get("external_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    if let (Some(first), Some(last)) = (deals.first().map(|d| d.id), deals.last().map(|d| d.id)) {
        let links: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT deal_id, contact_id FROM deal_contacts WHERE deal_id >= $1 AND deal_id <= $2 \
             ORDER BY contact_id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(db.pool())
        .await?;
        for (deal, contact) in links {
            if let Ok(i) = deals.binary_search_by_key(&deal, |d| d.id) {
                deals[i].contact_ids.push(contact);
            }
        }
    }
    Ok(deals)
}
