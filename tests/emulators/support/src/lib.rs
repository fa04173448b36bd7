//! `emulator-support`: what the provider emulators share. [`Served`] runs a
//! router on a free loopback port until it is dropped, and can play an
//! unreachable server; [`lock`] takes a mutex even after a test thread
//! panicked holding it. Nothing here knows a provider; it must not be used
//! outside tests.

pub mod folders;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};

/// A listener that, while `offline` is set, closes every connection at once.
struct Gate {
    inner: TcpListener,
    offline: Arc<AtomicBool>,
}

impl Listener for Gate {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            if !self.offline.load(Ordering::SeqCst) {
                return (stream, addr);
            }
            drop(stream);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A router served on `127.0.0.1:<free port>`; dropping it stops the server.
pub struct Served {
    addr: SocketAddr,
    offline: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serve `app`.
    pub async fn start(app: Router) -> std::io::Result<Served> {
        let inner = TcpListener::bind("127.0.0.1:0").await?;
        let addr = inner.local_addr()?;
        let offline = Arc::new(AtomicBool::new(false));
        let gate = Gate {
            inner,
            offline: offline.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(gate, app).await;
        });
        Ok(Served {
            addr,
            offline,
            task,
        })
    }

    /// Play an unreachable server (every connection closed at once), or stop.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
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
