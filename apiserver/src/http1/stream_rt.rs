//! Long-lived responses (watches) written from their own runtime.
//!
//! A watch event wakes every watcher's connection task at once: with 1000 watchers, 1000 tasks
//! queue in the runtime's run queues, and whatever else wakes then (a create's connection, the
//! etcd client's HTTP/2 task, the shared watch feed that decodes the next event) waits behind
//! them, in first-in first-out order, at every hop of its way. A connection whose response is
//! marked [`LongLived`] therefore writes that response from the stream runtime (its own worker
//! threads), and comes back when the response ends: request handling and the store client keep
//! their threads, and the kernel's scheduler, not one FIFO queue, shares the cores between the
//! two.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Marks a response whose body streams for a long time (a watch): the HTTP/1.1 connection
/// writes it from the stream runtime ([`handle`]). Put it in the response's extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct LongLived;

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// The process's stream runtime, built on first use with a worker per two cores (at least
/// one); `None` (the response is then written where the connection runs) if the OS refused
/// its threads.
///
/// Why half the cores: the fan-out is mostly the kernel's TCP work, and it would otherwise
/// take every core from request handling and the store. On this project's 2-core machines,
/// two stream workers against one cost ~12% more CPU for the same fan-out (9.2-9.4 s against
/// 10.7-11.0 s of server CPU per 10 s of the watch bench: 1000 tasks woken per event, stolen
/// back and forth between two workers) and gave a worse delivery p99 (etcd, interleaved runs:
/// 76/28/91/51 ms against 233/402/88/201 ms; SQLite 26/27/30 against 125/100/203 ms).
pub fn handle() -> Option<Handle> {
    RUNTIME
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let workers = (cores / 2).max(1);
            match Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("capstan-streams")
                .enable_all()
                .build()
            {
                Ok(rt) => Some(rt),
                Err(e) => {
                    tracing::warn!(error = %e, "no stream runtime; long responses stay on the connection's");
                    None
                }
            }
        })
        .as_ref()
        .map(|rt| rt.handle().clone())
}
