//! The one error type of the CRM's operations.

/// Why a CRM operation failed; the web layer maps each kind to a status.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// Input that breaks a rule: names the field and the problem.
    #[error("{field}: {why}")]
    Invalid {
        /// The field, as the API names it.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// The object does not exist (or the caller may not see it).
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of object.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The input clashes with something stored (a unique key).
    #[error("{field}: {why}")]
    Conflict {
        /// The field.
        field: String,
        /// The clash.
        why: String,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Stored credentials do not open with the operator's key.
    #[error(transparent)]
    Vault(#[from] mailroom_vault::VaultError),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] mailroom_store::sqlx::Error),
}

impl CrmError {
    pub(crate) fn invalid(field: &str, why: impl Into<String>) -> Self {
        CrmError::Invalid {
            field: field.into(),
            why: why.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        CrmError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// A clash on the unique `external_id` of a contact or deal.
    pub(crate) fn external_id_taken(
        prefix: &str,
        what: &str,
    ) -> impl FnOnce(mailroom_store::sqlx::Error) -> Self + use<> {
        Self::conflict_on(
            &format!("{prefix}external_id"),
            &format!("another {what} has this external id"),
        )
    }

    /// A unique-key violation becomes a conflict on `field`; anything else stays a store error.
    pub(crate) fn conflict_on(
        field: &str,
        why: &str,
    ) -> impl FnOnce(mailroom_store::sqlx::Error) -> Self + use<> {
        let (field, why) = (field.to_string(), why.to_string());
        move |e| match &e {
            mailroom_store::sqlx::Error::Database(d) if d.is_unique_violation() => {
                CrmError::Conflict { field, why }
            }
            _ => CrmError::Store(e),
        }
    }
}
