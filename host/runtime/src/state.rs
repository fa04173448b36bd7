//! What a store holds for one run, and the small host interfaces it serves
//! itself: `log`, the memory limiter and the captured stderr.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mailroom_contract::v1::{log, types};
use mailroom_http::HttpHooks;
use mailroom_net::{NetCtx, NetView, WasiNetView};
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 2048;
/// The most log lines one run may write; the rest are dropped (counted once).
const MAX_LOG_LINES: u32 = 500;

/// The data of one run's store.
pub(crate) struct RunState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: HttpHooks,
    pub(crate) net: NetCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stderr: Captured,
    /// Log lines the plugin wrote in this run.
    pub(crate) log_lines: u32,
    /// When the current call's running time is up (see `run::arm`).
    pub(crate) cpu_deadline: std::time::Instant,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiNetView for RunState {
    fn net(&mut self) -> NetView<'_> {
        NetView {
            ctx: &mut self.net,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that a plugin hit the cap, so that the
/// trap that follows is reported as what it is.
pub(crate) struct MemoryLimiter {
    pub(crate) max_bytes: usize,
    pub(crate) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded",
                self.max_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A plugin's stdout/stderr: kept up to a cap (for the panic message of a
/// crashed plugin), the rest dropped.
#[derive(Clone)]
pub(crate) struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl Captured {
    pub(crate) fn new(cap: usize) -> Self {
        Captured {
            buf: Arc::new(Mutex::new(Vec::new())),
            cap,
        }
    }

    /// The last meaningful line written: where a Rust panic puts its message.
    pub(crate) fn last_lines(&self) -> String {
        let buf = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect();
        let start = lines.len().saturating_sub(2);
        lines[start..].join(" ")
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut buf) = self.buf.lock() {
            let room = self.cap.saturating_sub(buf.len());
            buf.extend_from_slice(&data[..data.len().min(room)]);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `mailroom:provider/log` and the type-only `types` interface.
struct Log;

impl HasData for Log {
    type Data<'a> = &'a mut RunState;
}

impl types::Host for &mut RunState {}

impl log::Host for &mut RunState {
    async fn write(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    target: "plugin",
                    "the plugin wrote more than {MAX_LOG_LINES} log lines in this run; the rest are dropped"
                );
            }
            return Ok(());
        }
        let message = log_line(&message);
        match level {
            types::Level::Debug => tracing::debug!(target: "plugin", "{message}"),
            types::Level::Info => tracing::info!(target: "plugin", "{message}"),
            types::Level::Warn => tracing::warn!(target: "plugin", "{message}"),
            types::Level::Error => tracing::error!(target: "plugin", "{message}"),
        }
        Ok(())
    }
}

/// A plugin's log line as the host writes it: control characters escaped
/// (a line break cannot forge another line), cut at `MAX_LOG_LINE` bytes.
fn log_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LOG_LINE) + 3);
    for c in message.chars() {
        if out.len() >= MAX_LOG_LINE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Link everything a plugin may import: the WASI 0.2 command imports, with a
/// context that grants nothing (no preopened directory, no environment, no
/// arguments, every socket and name lookup refused, stdio captured);
/// `wasi:http` (through [`HttpHooks`]); and `mailroom:provider/{net,log,types}`.
/// Toolchains import `wasi:filesystem` and `wasi:sockets` as a matter of
/// course, so they are linked rather than refused, and deny every use.
pub(crate) fn link(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    mailroom_net::add_to_linker(linker)?;
    types::add_to_linker::<RunState, Log>(linker, |t| t)?;
    log::add_to_linker::<RunState, Log>(linker, |t| t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_line_cannot_forge_another() {
        let line = super::log_line("ok\n2026-12-07T10:00:00Z ERROR forged\r\x1b[2J");
        assert_eq!(line, "ok\\n2026-12-07T10:00:00Z ERROR forged\\r\\u{1b}[2J");
        let long = super::log_line(&"é".repeat(5000));
        assert!(long.len() <= super::MAX_LOG_LINE + 3 && long.ends_with('…'));
    }
}
