//! Connected mailboxes: owner, provider, address, the user's choices (sync
//! scope, visibility, sentiment, preferred) and the credentials, sealed with
//! the operator's key. Owns `accounts`; disconnecting purges the account's
//! mail through `messages`.

use std::collections::BTreeMap;

use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, next_id, unix_now};
use mailroom_vault::Vault;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::users::User;
use crate::{CrmError, Id, enum_parse, enum_text, generation, messages};

/// Whose mail an account syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every contact, with or without deals, and every deal of theirs.
    #[default]
    AllContacts,
    /// Only contacts that are the primary contact of an open deal, on those deals.
    PrimaryOpenDeals,
}

/// Who sees an account's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every user.
    Public,
    /// Only the owner.
    #[default]
    Private,
}

/// A connected account as its owner sees it (never with credentials).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    /// Id.
    pub id: Id,
    /// The user who connected it.
    pub owner_id: Id,
    /// The provider plugin's name.
    pub provider: String,
    /// The connected address, normalised.
    pub address: String,
    /// Connected (Unix seconds).
    pub created_at: i64,
    /// Sync emails from.
    pub scope: Scope,
    /// Email visibility.
    pub visibility: Visibility,
    /// Whether sentiment analysis may score this account's mail.
    pub sentiment: bool,
    /// Whether this is the owner's preferred account for automated email.
    pub preferred: bool,
    /// The plugin's non-secret settings.
    pub settings: BTreeMap<String, String>,
    /// Names of the stored secrets (never their values).
    pub secret_names: Vec<String>,
    /// When the credentials were last set (Unix seconds).
    pub credentials_updated_at: i64,
}

/// A mailbox to connect.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// The provider plugin's name.
    pub provider: String,
    /// The mailbox address.
    pub address: String,
    /// Non-secret settings by field name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Secrets by field name (passwords, tokens); sealed at once.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Sync emails from (default all contacts).
    #[serde(default)]
    pub scope: Scope,
    /// Email visibility (default private).
    #[serde(default)]
    pub visibility: Visibility,
    /// Allow sentiment analysis (default no).
    #[serde(default)]
    pub sentiment: bool,
    /// Make it the preferred account (Professional and Enterprise plans).
    #[serde(default)]
    pub preferred: bool,
}

impl Connect {
    /// A mailbox with the defaults: all contacts, private, no sentiment
    /// analysis, not preferred.
    pub fn new(
        provider: impl Into<String>,
        address: impl Into<String>,
        settings: BTreeMap<String, String>,
        secrets: BTreeMap<String, String>,
    ) -> Self {
        Connect {
            provider: provider.into(),
            address: address.into(),
            settings,
            secrets,
            scope: Scope::default(),
            visibility: Visibility::default(),
            sentiment: false,
            preferred: false,
        }
    }
}

/// Changes to an account; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Sync emails from.
    pub scope: Option<Scope>,
    /// Email visibility.
    pub visibility: Option<Visibility>,
    /// Sentiment analysis.
    pub sentiment: Option<bool>,
    /// Preferred account.
    pub preferred: Option<bool>,
    /// Non-secret settings; replaces the stored ones when given.
    pub settings: Option<BTreeMap<String, String>>,
    /// New credentials ("Update authentication"); replaces the stored ones when given.
    pub secrets: Option<BTreeMap<String, String>>,
}

fn bound_to(id: Id) -> Vec<u8> {
    format!("account:{id}").into_bytes()
}

fn seal(vault: &Vault, id: Id, secrets: &BTreeMap<String, String>) -> Vec<u8> {
    let plain = serde_json::to_vec(secrets).unwrap_or_default();
    vault.seal(&bound_to(id), &plain)
}

const COLUMNS: &str = "id, owner_id, provider, address, created_at, scope, visibility, sentiment, \
                       preferred, settings, sealed_secrets, credentials_updated_at";

fn from_row(vault: &Vault, row: &sqlx::any::AnyRow) -> Result<Account, CrmError> {
    let id: i64 = row.try_get("id")?;
    let settings: String = row.try_get("settings")?;
    let sealed: Vec<u8> = row.try_get("sealed_secrets")?;
    let secrets: BTreeMap<String, String> =
        serde_json::from_slice(&vault.open(&bound_to(id), &sealed)?).unwrap_or_default();
    Ok(Account {
        id,
        owner_id: row.try_get("owner_id")?,
        provider: row.try_get("provider")?,
        address: row.try_get("address")?,
        created_at: row.try_get("created_at")?,
        scope: enum_parse("scope", row.try_get("scope")?)?,
        visibility: enum_parse("visibility", row.try_get("visibility")?)?,
        sentiment: row.try_get::<i64, _>("sentiment")? != 0,
        preferred: row.try_get::<i64, _>("preferred")? != 0,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        secret_names: secrets.into_keys().collect(),
        credentials_updated_at: row.try_get("credentials_updated_at")?,
    })
}

/// Connect a mailbox for `owner`. The plugin's `verify` is the caller's
/// business (the web layer runs it before calling this).
pub async fn connect(
    db: &Db,
    vault: &Vault,
    owner: &User,
    c: &Connect,
) -> Result<Account, CrmError> {
    let address = mailroom_mail::normalize_address(&c.address).ok_or_else(|| {
        CrmError::invalid(
            "address",
            format!("`{}` is not an email address", c.address),
        )
    })?;
    if c.provider.trim().is_empty() {
        return Err(CrmError::invalid("provider", "is required"));
    }
    if c.preferred && !owner.plan.has_preferred_account() {
        return Err(CrmError::invalid(
            "preferred",
            "a preferred email account needs the Professional or Enterprise plan",
        ));
    }
    let id = next_id();
    let now = unix_now();
    let mut tx = db.begin().await?;
    if c.preferred {
        clear_preferred(&mut tx, owner.id).await?;
    }
    sqlx::query(
        "INSERT INTO accounts (id, owner_id, provider, address, created_at, scope, visibility, \
         sentiment, preferred, settings, sealed_secrets, credentials_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $5)",
    )
    .bind(id)
    .bind(owner.id)
    .bind(c.provider.trim())
    .bind(&address)
    .bind(now)
    .bind(enum_text(c.scope))
    .bind(enum_text(c.visibility))
    .bind(i64::from(c.sentiment))
    .bind(i64::from(c.preferred))
    .bind(serde_json::to_string(&c.settings).unwrap_or_default())
    .bind(seal(vault, id, &c.secrets))
    .execute(&mut *tx)
    .await
    .map_err(CrmError::conflict_on(
        "address",
        "this mailbox is already connected",
    ))?;
    tx.commit().await?;
    get(db, vault, id).await
}

async fn clear_preferred(tx: &mut mailroom_store::Tx, owner: Id) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET preferred = 0 WHERE owner_id = $1")
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Change an account of `owner`'s. A new scope re-links its stored mail
/// (through the CRM generation); new secrets are sealed.
pub async fn change(
    db: &Db,
    vault: &Vault,
    owner: &User,
    id: Id,
    change: &Change,
) -> Result<Account, CrmError> {
    let current = get_owned(db, vault, owner, id).await?;
    if change.preferred == Some(true) && !owner.plan.has_preferred_account() {
        return Err(CrmError::invalid(
            "preferred",
            "a preferred email account needs the Professional or Enterprise plan",
        ));
    }
    let mut tx = db.begin().await?;
    if change.preferred == Some(true) {
        clear_preferred(&mut tx, owner.id).await?;
    }
    sqlx::query(
        "UPDATE accounts SET scope = $1, visibility = $2, sentiment = $3, preferred = $4, settings = $5 \
         WHERE id = $6",
    )
    .bind(enum_text(change.scope.unwrap_or(current.scope)))
    .bind(enum_text(change.visibility.unwrap_or(current.visibility)))
    .bind(i64::from(change.sentiment.unwrap_or(current.sentiment)))
    .bind(i64::from(change.preferred.unwrap_or(current.preferred)))
    .bind(serde_json::to_string(change.settings.as_ref().unwrap_or(&current.settings)).unwrap_or_default())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(secrets) = &change.secrets {
        sqlx::query(
            "UPDATE accounts SET sealed_secrets = $1, credentials_updated_at = $2 WHERE id = $3",
        )
        .bind(seal(vault, id, secrets))
        .bind(unix_now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    if change.scope.is_some_and(|s| s != current.scope) {
        generation::bump(&mut tx).await?;
    }
    tx.commit().await?;
    get(db, vault, id).await
}

/// Disconnect an account of `owner`'s: its mail goes, except messages
/// another account still holds.
pub async fn disconnect(db: &Db, vault: &Vault, owner: &User, id: Id) -> Result<(), CrmError> {
    get_owned(db, vault, owner, id).await?;
    let mut tx = db.begin().await?;
    messages::purge_account(&mut tx, id).await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// How many connected accounts use the plugin `provider`.
pub async fn count_by_provider(db: &Db, provider: &str) -> Result<i64, CrmError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts WHERE provider = $1")
        .bind(provider)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}

/// The account `owner` marked as preferred for automated email, if any.
pub async fn preferred(db: &Db, vault: &Vault, owner: Id) -> Result<Option<Account>, CrmError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE owner_id = $1 AND preferred = 1 ORDER BY id LIMIT 1"
    ))
    .bind(owner)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| from_row(vault, &r)).transpose()
}

/// An account by id, whoever owns it (for the sync engine).
pub async fn get(db: &Db, vault: &Vault, id: Id) -> Result<Account, CrmError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| CrmError::not_found("account", id))?;
    from_row(vault, &row)
}

/// An account of `owner`'s; another user's account is "not found".
pub async fn get_owned(db: &Db, vault: &Vault, owner: &User, id: Id) -> Result<Account, CrmError> {
    let account = get(db, vault, id).await?;
    if account.owner_id != owner.id {
        return Err(CrmError::not_found("account", id));
    }
    Ok(account)
}

/// `owner`'s accounts.
pub async fn list_owned(db: &Db, vault: &Vault, owner: Id) -> Result<Vec<Account>, CrmError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE owner_id = $1 ORDER BY id"
    ))
    .bind(owner)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| from_row(vault, r))
    .collect()
}

/// Every account id (for the sync engine).
pub async fn all_ids(db: &Db) -> Result<Vec<Id>, CrmError> {
    Ok(sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
        .fetch_all(db.pool())
        .await?)
}

/// The account's secrets in clear, for handing to the plugin host. Only
/// the sync engine calls this; the values never leave the host process.
pub async fn secrets(db: &Db, vault: &Vault, id: Id) -> Result<BTreeMap<String, String>, CrmError> {
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed_secrets FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| CrmError::not_found("account", id))?;
    serde_json::from_slice(&vault.open(&bound_to(id), &sealed)?)
        .map_err(|e| CrmError::invalid("secrets", e.to_string()))
}

/// Store secrets the host renewed on its own (a refreshed OAuth access
/// token), unless the owner set new credentials since `credentials_updated_at`
/// (their "Update authentication" wins). Returns whether they were stored.
pub async fn store_renewed_secrets(
    db: &Db,
    vault: &Vault,
    id: Id,
    secrets: &BTreeMap<String, String>,
    credentials_updated_at: i64,
) -> Result<bool, CrmError> {
    let done = sqlx::query(
        "UPDATE accounts SET sealed_secrets = $1 WHERE id = $2 AND credentials_updated_at = $3",
    )
    .bind(seal(vault, id, secrets))
    .bind(id)
    .bind(credentials_updated_at)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The addresses of all of `owner`'s accounts: never matched as contacts.
pub async fn own_addresses(db: &Db, owner: Id) -> Result<Vec<String>, CrmError> {
    Ok(
        sqlx::query_scalar("SELECT address FROM accounts WHERE owner_id = $1")
            .bind(owner)
            .fetch_all(db.pool())
            .await?,
    )
}
