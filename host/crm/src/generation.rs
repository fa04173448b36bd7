//! The CRM generation: a counter bumped in every transaction that changes
//! contacts, their addresses or deals, so that matchers (in this process or
//! another host) know their contact index is stale and accounts know their
//! links need another look.

use mailroom_store::sqlx::{self, Executor};
use mailroom_store::{Any, Tx};

/// Mark the CRM as changed, inside the transaction making the change.
pub async fn bump(tx: &mut Tx) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE crm_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The current generation.
pub async fn current<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT generation FROM crm_generation WHERE id = 1")
        .fetch_one(db)
        .await
}
