//! The automation action "Send a personalized email": for a deal (to its
//! primary contact unless told otherwise) or a contact, a subject and body
//! with personalisation tags, from one of the caller's connected addresses
//! or from `%deal_owner_email%`, the deal owner's preferred account.
//!
//! Each action carries an idempotency key. The first request with a key
//! composes the message once and records it in `automation_sends` (which
//! this module owns) before anything is sent; a request repeating the key
//! gets that record back and sends nothing. A send that fails for a
//! transient reason is retried with backoff by [`Outbound::retry_due`];
//! one that cannot succeed is marked failed with its reason.

use std::time::Duration;

use mailroom_crm::accounts::{self, Account};
use mailroom_crm::contacts::{self, Contact};
use mailroom_crm::deals::{self, Deal};
use mailroom_crm::users::{self, User};
use mailroom_crm::{CrmError, Id};
use mailroom_mail::{Draft, compose};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{next_id, unix_now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::tags::{Values, fill, split_name};
use crate::{Outbound, OutboundError};

/// The sender that stands for the deal owner's preferred account.
pub const DEAL_OWNER: &str = "%deal_owner_email%";
/// The most attempts a send gets before it is marked failed.
pub const MAX_ATTEMPTS: i64 = 6;
/// How long an attempt under way holds its email: one whose host stopped
/// mid-attempt is tried again after this (with the same Message-ID).
const LEASE_SECONDS: i64 = 600;

/// An automation's request to send a personalized email.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// The deal the automation runs for (or give `contact_id`).
    #[serde(default)]
    pub deal_id: Option<Id>,
    /// The contact it runs for, without a deal; with a deal, the recipient
    /// instead of its primary contact.
    #[serde(default)]
    pub contact_id: Option<Id>,
    /// `%deal_owner_email%` (the deal owner's preferred account) or one of
    /// the caller's connected addresses.
    pub sender: String,
    /// The subject, with personalisation tags.
    pub subject: String,
    /// The plain-text body, with personalisation tags.
    pub body: String,
    /// Unique per intended email: a request repeating it sends nothing again.
    pub idempotency_key: String,
}

/// How an automated email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Recorded; being sent.
    Pending,
    /// Sent.
    Sent,
    /// A transient failure: tried again at `next_attempt_at`.
    Retrying,
    /// It cannot be sent: see `last_error`.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "sent" => Status::Sent,
            "retrying" => Status::Retrying,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// One automated email as recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutomatedEmail {
    /// Id.
    pub id: Id,
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// Where it stands.
    pub status: Status,
    /// The account it is sent from.
    pub account_id: Id,
    /// The sender address.
    pub from: String,
    /// The recipient address.
    pub to: String,
    /// The deal, when it was sent for one.
    pub deal_id: Option<Id>,
    /// The recipient contact.
    pub contact_id: Id,
    /// The filled-in subject.
    pub subject: String,
    /// The Message-ID it goes out with (the same on every attempt).
    pub message_id: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is tried again (Unix seconds), while retrying.
    pub next_attempt_at: Option<i64>,
    /// When it was sent (Unix seconds).
    pub sent_at: Option<i64>,
    /// Whether this request found the key already used (nothing new was sent).
    pub repeated: bool,
}

fn invalid(field: &str, why: impl Into<String>) -> OutboundError {
    OutboundError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// The request as stored for comparison: a repeated key must repeat the request.
fn request_hash(req: &SendEmail) -> String {
    let text = serde_json::to_string(req).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Who and what a request resolves to.
struct Resolved {
    account: Account,
    from_name: Option<String>,
    deal: Option<Deal>,
    contact: Contact,
    recipient: String,
    subject: String,
    body: String,
}

impl Outbound {
    /// Run the action for `caller`: the recorded email, sent or not yet.
    pub async fn send_email(
        &self,
        caller: &User,
        req: &SendEmail,
    ) -> Result<AutomatedEmail, OutboundError> {
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(invalid(
                "idempotency_key",
                "must be 1 to 200 characters, unique per intended email",
            ));
        }
        let hash = request_hash(req);
        if let Some(done) = self.by_key(key).await? {
            return repeated(done, &hash, caller);
        }
        let r = self.resolve(caller, req).await?;
        let draft = Draft {
            from_name: r.from_name.clone(),
            from: r.account.address.clone(),
            to: vec![r.recipient.clone()],
            cc: vec![],
            subject: r.subject.clone(),
            text: r.body.clone(),
        };
        let id = next_id();
        let composed = compose(&draft, unix_now(), &format!("{id}.auto"));
        let inserted = sqlx::query(
            "INSERT INTO automation_sends (id, idempotency_key, request_hash, requested_by, account_id, \
             deal_id, contact_id, recipient, subject, message_id, raw, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, $12, $13) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(id)
        .bind(key)
        .bind(&hash)
        .bind(caller.id)
        .bind(r.account.id)
        .bind(r.deal.as_ref().map(|d| d.id))
        .bind(r.contact.id)
        .bind(&r.recipient)
        .bind(&r.subject)
        .bind(&composed.message_id)
        .bind(&composed.raw)
        .bind(unix_now() + LEASE_SECONDS)
        .bind(unix_now())
        .execute(self.db.pool())
        .await
        .map_err(CrmError::from)?;
        if inserted.rows_affected() == 0 {
            // Another request with this key recorded first.
            let done = self
                .by_key(key)
                .await?
                .ok_or_else(|| invalid("idempotency_key", "was used by a request that is gone"))?;
            return repeated(done, &hash, caller);
        }
        self.attempt(id).await
    }

    async fn resolve(&self, caller: &User, req: &SendEmail) -> Result<Resolved, OutboundError> {
        let deal = match req.deal_id {
            Some(id) => Some(deals::get(&self.db, id).await?),
            None => None,
        };
        let contact_id = match (&deal, req.contact_id) {
            (_, Some(c)) => c,
            (Some(d), None) => d.primary_contact_id.ok_or_else(|| {
                invalid(
                    "contact_id",
                    "the deal has no primary contact: set one on the deal, or name the recipient in `contact_id`",
                )
            })?,
            (None, None) => return Err(invalid("deal_id", "give a deal or a contact to send for")),
        };
        let contact = contacts::get(&self.db, contact_id).await?;
        let recipient = contact.emails.first().cloned().ok_or_else(|| {
            invalid(
                "contact_id",
                format!("{} has no email address", contact.name),
            )
        })?;
        let owner = match deal.as_ref().and_then(|d| d.owner_id) {
            Some(id) => Some(users::get(&self.db, id).await?),
            None => None,
        };
        let (account, from_name) = self
            .sender(caller, req, deal.as_ref(), owner.as_ref())
            .await?;
        let (first, last) = split_name(&contact.name);
        let mut values = Values::new();
        values.insert("FIRSTNAME", first);
        values.insert("LASTNAME", last);
        values.insert("EMAIL", recipient.clone());
        if let Some(d) = &deal {
            values.insert("DEAL_TITLE", d.title.clone());
            values.insert("DEAL_VALUE", format!("{:.2} {}", d.value, d.currency));
            if let Some(o) = &owner {
                values.insert("DEAL_OWNER_NAME", display_name(o));
            }
        }
        let subject = fill(&req.subject, &values).map_err(|e| invalid("subject", e.to_string()))?;
        if subject.trim().is_empty() || subject.contains(['\r', '\n']) {
            return Err(invalid("subject", "must be one non-empty line"));
        }
        let body = fill(&req.body, &values).map_err(|e| invalid("body", e.to_string()))?;
        Ok(Resolved {
            account,
            from_name,
            deal,
            contact,
            recipient,
            subject,
            body,
        })
    }

    /// The account to send from: the deal owner's preferred one for
    /// `%deal_owner_email%`, else the caller's own account with that address.
    async fn sender(
        &self,
        caller: &User,
        req: &SendEmail,
        deal: Option<&Deal>,
        owner: Option<&User>,
    ) -> Result<(Account, Option<String>), OutboundError> {
        if req.sender.trim() == DEAL_OWNER {
            if deal.is_none() {
                return Err(invalid(
                    "sender",
                    "%deal_owner_email% needs a deal: give `deal_id`",
                ));
            }
            let owner = owner.ok_or_else(|| {
                invalid("sender", "the deal has no owner: set the deal's `owner_id`, or send from one of your connected addresses")
            })?;
            if owner.id != caller.id && caller.role != users::Role::Admin {
                return Err(OutboundError::Forbidden(format!(
                    "only the deal's owner ({}) or an admin may send as the deal owner",
                    owner.email
                )));
            }
            if !owner.plan.has_preferred_account() {
                return Err(invalid(
                    "sender",
                    format!(
                        "{} is on a plan without a preferred email account (Sales Professional and Enterprise have it): send from a connected address instead",
                        owner.email
                    ),
                ));
            }
            let account = accounts::preferred(&self.db, &self.vault, owner.id)
                .await?
                .ok_or_else(|| {
                    invalid(
                        "sender",
                        format!(
                            "{} has no preferred email account: they mark one as preferred on Connected emails",
                            owner.email
                        ),
                    )
                })?;
            return Ok((account, Some(display_name(owner))));
        }
        let address = mailroom_mail::normalize_address(&req.sender).ok_or_else(|| {
            invalid(
                "sender",
                "is neither %deal_owner_email% nor an email address",
            )
        })?;
        let account = accounts::list_owned(&self.db, &self.vault, caller.id)
            .await?
            .into_iter()
            .find(|a| a.address == address)
            .ok_or_else(|| {
                invalid(
                    "sender",
                    format!("{address} is not one of your connected accounts: connect it, or use %deal_owner_email%"),
                )
            })?;
        Ok((account, Some(display_name(caller))))
    }

    async fn by_key(&self, key: &str) -> Result<Option<Recorded>, OutboundError> {
        let row = sqlx::query(&format!("{SELECT} WHERE s.idempotency_key = $1"))
            .bind(key)
            .fetch_optional(self.db.pool())
            .await
            .map_err(CrmError::from)?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(Recorded {
                    email: from_row(&r)?,
                    request_hash: r.try_get("request_hash")?,
                    requested_by: r.try_get("requested_by")?,
                })
            })
            .transpose()
            .map_err(CrmError::from)?)
    }

    async fn by_id(&self, id: Id) -> Result<AutomatedEmail, OutboundError> {
        let row = sqlx::query(&format!("{SELECT} WHERE s.id = $1"))
            .bind(id)
            .fetch_one(self.db.pool())
            .await
            .map_err(CrmError::from)?;
        Ok(from_row(&row).map_err(CrmError::from)?)
    }

    /// One attempt at a recorded email; its record after.
    async fn attempt(&self, id: Id) -> Result<AutomatedEmail, OutboundError> {
        let row = sqlx::query("SELECT account_id, recipient, raw, message_id, attempts FROM automation_sends WHERE id = $1")
            .bind(id)
            .fetch_one(self.db.pool())
            .await
            .map_err(CrmError::from)?;
        let account_id: Id = row.try_get("account_id").map_err(CrmError::from)?;
        let recipient: String = row.try_get("recipient").map_err(CrmError::from)?;
        let attempts: i64 = row.try_get::<i64, _>("attempts").map_err(CrmError::from)? + 1;
        let composed = mailroom_mail::Composed {
            message_id: row.try_get("message_id").map_err(CrmError::from)?,
            raw: row.try_get("raw").map_err(CrmError::from)?,
        };
        let account = accounts::get(&self.db, &self.vault, account_id).await?;
        let outcome = self.send(&account, &[recipient], &composed).await;
        let now = unix_now();
        let (status, error, next) = match &outcome {
            Ok(_) => (Status::Sent, None, None),
            Err(e) if e.is_transient() && attempts < MAX_ATTEMPTS => {
                let wait = self.retry_base.saturating_mul(1 << (attempts - 1).min(10));
                let wait = wait.min(Duration::from_secs(3600)).as_secs().max(1) as i64;
                (Status::Retrying, Some(e.to_string()), Some(now + wait))
            }
            Err(e) => (Status::Failed, Some(e.to_string()), None),
        };
        if let Some(why) = &error {
            tracing::warn!(automated_email = id, attempts, status = status.as_str(), error = %why, "automated email not sent");
        }
        sqlx::query(
            "UPDATE automation_sends SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, \
             sent_at = $5 WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(attempts)
        .bind(error)
        .bind(next)
        .bind((status == Status::Sent).then_some(now))
        .bind(id)
        .execute(self.db.pool())
        .await
        .map_err(CrmError::from)?;
        self.by_id(id).await
    }

    /// Try again every automated email whose retry is due, or whose attempt
    /// was left unfinished by a host that stopped; how many were tried.
    /// Each is claimed first, so that two hosts never send one twice at once.
    pub async fn retry_due(&self) -> Result<usize, OutboundError> {
        let now = unix_now();
        let due: Vec<(Id, i64)> = sqlx::query(
            "SELECT id, next_attempt_at FROM automation_sends \
             WHERE status IN ('retrying', 'pending') AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 50",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await
        .map_err(CrmError::from)?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("next_attempt_at")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(CrmError::from)?;
        let mut tried = 0;
        for (id, at) in due {
            let claimed = sqlx::query(
                "UPDATE automation_sends SET status = 'pending', next_attempt_at = $1 \
                 WHERE id = $2 AND status IN ('retrying', 'pending') AND next_attempt_at = $3",
            )
            .bind(now + LEASE_SECONDS)
            .bind(id)
            .bind(at)
            .execute(self.db.pool())
            .await
            .map_err(CrmError::from)?;
            if claimed.rows_affected() == 1 {
                self.attempt(id).await?;
                tried += 1;
            }
        }
        Ok(tried)
    }

    /// One automated email by its idempotency key, for the caller who asked for it (or an admin).
    pub async fn get(&self, caller: &User, key: &str) -> Result<AutomatedEmail, OutboundError> {
        match self.by_key(key).await? {
            Some(r) if r.requested_by == caller.id || caller.role == users::Role::Admin => {
                Ok(r.email)
            }
            _ => Err(OutboundError::NotFound(key.to_string())),
        }
    }
}

const SELECT: &str = "SELECT s.id, s.idempotency_key, s.request_hash, s.requested_by, s.status, s.account_id, \
     a.address AS sender, s.recipient, s.deal_id, s.contact_id, s.subject, s.message_id, s.attempts, \
     s.last_error, s.next_attempt_at, s.sent_at FROM automation_sends s JOIN accounts a ON a.id = s.account_id";

fn from_row(r: &sqlx::any::AnyRow) -> Result<AutomatedEmail, sqlx::Error> {
    Ok(AutomatedEmail {
        id: r.try_get("id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        status: Status::parse(&r.try_get::<String, _>("status")?),
        account_id: r.try_get("account_id")?,
        from: r.try_get("sender")?,
        to: r.try_get("recipient")?,
        deal_id: r.try_get("deal_id")?,
        contact_id: r.try_get("contact_id")?,
        subject: r.try_get("subject")?,
        message_id: r.try_get("message_id")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        sent_at: r.try_get("sent_at")?,
        repeated: false,
    })
}

/// An automated email as stored, with what identifies its request.
struct Recorded {
    email: AutomatedEmail,
    request_hash: String,
    requested_by: Id,
}

/// The record a repeated key finds: the same request by the same caller
/// gets it back; any other request under the same key is refused.
fn repeated(done: Recorded, asked: &str, caller: &User) -> Result<AutomatedEmail, OutboundError> {
    let Recorded {
        email: mut done,
        request_hash: hash,
        requested_by,
    } = done;
    if requested_by != caller.id || hash != asked {
        return Err(OutboundError::Conflict(
            "idempotency_key was already used for a different email: use a new key for a new email"
                .into(),
        ));
    }
    done.repeated = true;
    Ok(done)
}

fn display_name(user: &User) -> String {
    if user.name.trim().is_empty() {
        user.email.clone()
    } else {
        user.name.clone()
    }
}
