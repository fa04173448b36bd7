//! The cap on connections one run holds open, shared by `net` streams and
//! HTTP requests.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many more connections a run may open. Cloning shares the budget.
#[derive(Clone, Debug)]
pub struct ConnectionBudget(Arc<Semaphore>);

/// One open connection's share of the budget; returned when dropped.
pub type ConnectionPermit = OwnedSemaphorePermit;

impl ConnectionBudget {
    /// A budget of `max` connections at once.
    pub fn new(max: usize) -> Self {
        ConnectionBudget(Arc::new(Semaphore::new(max)))
    }

    /// Take one connection's share, if any is left.
    pub fn take(&self) -> Option<ConnectionPermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}
