//! `emulator-support`: what the provider emulators share. [`Served`] runs a
//! router on a free loopback port until it is dropped; [`lock`] takes a
//! mutex even after a test thread panicked holding it. Nothing here knows a
//! provider; it must not be used outside tests.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use axum::Router;

/// A router served on `127.0.0.1:<free port>`; dropping it stops the server.
pub struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serve `app`.
    pub async fn start(app: Router) -> std::io::Result<Served> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Served { addr, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lock `mutex`, also when a panicking test left it poisoned.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
