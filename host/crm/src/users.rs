//! CRM users: who signs in, their role and their plan. Owns `users`.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, next_id, unix_now};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CrmError, Id, enum_parse, enum_text};

/// What a user may administer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and API tokens besides everything a member does.
    Admin,
    /// Connects mailboxes and works with contacts and deals.
    Member,
}

/// The user's subscription plan; some features need a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Lite.
    Lite,
    /// Plus.
    Plus,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

impl Plan {
    /// Whether the plan includes choosing a preferred email account.
    pub fn has_preferred_account(self) -> bool {
        self >= Plan::Professional
    }
}

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// Id.
    pub id: Id,
    /// Sign-in email, normalised.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Plan.
    pub plan: Plan,
    /// Created (Unix seconds).
    pub created_at: i64,
}

/// A new user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewUser {
    /// Sign-in email.
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Role (default member).
    #[serde(default = "member")]
    pub role: Role,
    /// Plan (default lite).
    #[serde(default = "lite")]
    pub plan: Plan,
    /// Password (at least 8 characters); none for users who sign in with API tokens only.
    #[serde(default)]
    pub password: Option<String>,
}

impl NewUser {
    /// A user with no password (signing in with API tokens only), whose
    /// name shows as the email until one is set.
    pub fn new(email: impl Into<String>, role: Role, plan: Plan) -> Self {
        NewUser {
            email: email.into(),
            name: String::new(),
            role,
            plan,
            password: None,
        }
    }
}

fn member() -> Role {
    Role::Member
}
fn lite() -> Plan {
    Plan::Lite
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<User, CrmError> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: enum_parse("role", row.try_get("role")?)?,
        plan: enum_parse("plan", row.try_get("plan")?)?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "id, email, name, role, plan, created_at";

/// Create a user.
pub async fn create(db: &Db, new: NewUser) -> Result<User, CrmError> {
    let email = mailroom_mail::normalize_address(&new.email)
        .ok_or_else(|| CrmError::invalid("email", "is not an email address"))?;
    let hash = match &new.password {
        None => None,
        Some(p) if p.chars().count() < 8 => {
            return Err(CrmError::invalid(
                "password",
                "must be at least 8 characters",
            ));
        }
        Some(p) => Some(hash_password(p)?),
    };
    let user = User {
        id: next_id(),
        name: if new.name.trim().is_empty() {
            email.clone()
        } else {
            new.name.trim().to_string()
        },
        email,
        role: new.role,
        plan: new.plan,
        created_at: unix_now(),
    };
    sqlx::query(
        "INSERT INTO users (id, email, name, role, plan, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(enum_text(user.role))
    .bind(enum_text(user.plan))
    .bind(hash)
    .bind(user.created_at)
    .execute(db.pool())
    .await
    .map_err(CrmError::conflict_on(
        "email",
        "a user with this email exists",
    ))?;
    Ok(user)
}

/// A user by id.
pub async fn get(db: &Db, id: Id) -> Result<User, CrmError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| CrmError::not_found("user", id))?;
    from_row(&row)
}

/// Every user.
pub async fn list(db: &Db) -> Result<Vec<User>, CrmError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Check a sign-in. `None` for an unknown email or a wrong password alike.
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<Option<User>, CrmError> {
    let Some(email) = mailroom_mail::normalize_address(email) else {
        return Ok(None);
    };
    let Some(row) = sqlx::query(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE email = $1"
    ))
    .bind(&email)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let Some(stored) = row.try_get::<Option<String>, _>("password_hash")? else {
        return Ok(None);
    };
    let ok = PasswordHash::new(&stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    });
    if ok {
        from_row(&row).map(Some)
    } else {
        Ok(None)
    }
}

fn hash_password(password: &str) -> Result<String, CrmError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CrmError::invalid("password", e.to_string()))
}
