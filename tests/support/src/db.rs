//! Throwaway databases for tests: a SQLite file in a temp dir, or a fresh
//! PostgreSQL database on 127.0.0.1:5432 (`MAILROOM_TEST_POSTGRES` overrides
//! the server URL), dropped when the guard goes.

use sqlx::Connection;

/// The PostgreSQL server tests use.
pub fn postgres_server() -> String {
    std::env::var("MAILROOM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".into())
}

/// Which back end a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// A database that exists while this lives.
pub struct TestDb {
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new empty database of `kind`.
    pub async fn new(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("mailroom.db");
                TestDb {
                    url: format!("sqlite:{}", path.display()),
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let name = format!("mailroom_t_{:016x}", rand::random::<u64>());
                let mut conn = sqlx::PgConnection::connect(&postgres_server())
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (see README)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let server = postgres_server();
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                TestDb {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// The URL to open it with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.url.strip_prefix("sqlite:").map(Into::into)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside or outside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&postgres_server()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Run an async test body once per back end: `both_backends!(name, body_fn)`
/// makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::db::Kind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::db::Kind::Postgres).await
            }
        }
    };
}

/// Every stored copy of mail in the database at `url`, with its message key
/// and its number of contact and deal links, sorted: two databases that
/// synced the same mailboxes the same way have equal snapshots.
pub async fn mail_snapshot(url: &str) -> Vec<(String, String, i64, i64)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("database opens");
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.provider_id, m.message_key, \
           (SELECT COUNT(*) FROM message_contacts l WHERE l.message_id = m.id AND l.account_id = s.account_id), \
           (SELECT COUNT(*) FROM message_deals l WHERE l.message_id = m.id AND l.account_id = s.account_id) \
         FROM message_sources s JOIN messages m ON m.id = s.message_id ORDER BY s.provider_id, m.message_key",
    )
    .fetch_all(&pool)
    .await
    .expect("snapshot query");
    pool.close().await;
    rows
}
