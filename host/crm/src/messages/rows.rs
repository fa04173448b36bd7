//! Multi-row statements: a page's rows in one `INSERT` (or one `IN (…)`
//! lookup) per table instead of one per row. Placeholders are `$N` on
//! PostgreSQL and plain `?` on SQLite, where looking up thousands of
//! numbered parameters by name costs quadratic time (sqlx's `QueryBuilder`
//! writes `?` for `Any`, which PostgreSQL refuses).

use mailroom_store::Tx;
use mailroom_store::sqlx::{self, Any};

/// Most bound values in one statement (SQLite allows 32,766; PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// One bound value.
#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Int(i64),
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Owned(String),
    Bytes(Vec<u8>),
}

fn bind<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    v: Val<'q>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    match v {
        Val::Int(i) => q.bind(i),
        Val::Text(t) => q.bind(t),
        Val::MaybeText(t) => q.bind(t),
        Val::Owned(t) => q.bind(t),
        Val::Bytes(b) => q.bind(b),
    }
}

/// Whether the transaction is on SQLite, which gets positional `?` placeholders.
fn positional(tx: &Tx) -> bool {
    (**tx).backend_name() == "SQLite"
}

fn placeholders(positional: bool, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| {
            if positional {
                "?".to_string()
            } else {
                format!("${n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO table (columns) VALUES (…), (…) ON CONFLICT DO NOTHING`,
/// in as few statements as the parameter limit allows. Returns the rows inserted.
pub(super) async fn insert<'a>(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val<'a>>>,
) -> Result<u64, sqlx::Error> {
    let width = columns.len();
    let sqlite = positional(tx);
    let mut inserted = 0;
    let per_statement = (MAX_PARAMS / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val<'a>>> = rows.by_ref().take(per_statement).collect();
        let values: Vec<String> = (0..chunk.len())
            .map(|r| format!("({})", placeholders(sqlite, r * width + 1, width)))
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} ON CONFLICT DO NOTHING",
            columns.join(", "),
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for v in chunk.into_iter().flatten() {
            q = bind(q, v);
        }
        inserted += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}

/// The rows of `select` (which ends in `IN` and binds nothing else; ids it
/// compares with are written into it as numbers) for every key.
pub(super) async fn select_in<'a, T>(
    tx: &mut Tx,
    select: &str,
    keys: &[&'a str],
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let sqlite = positional(tx);
    let mut out = Vec::new();
    for chunk in keys.chunks(MAX_PARAMS) {
        let sql = format!("{select} ({})", placeholders(sqlite, 1, chunk.len()));
        let mut q = sqlx::query_as::<_, T>(&sql);
        for k in chunk {
            q = q.bind(*k);
        }
        out.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(out)
}
