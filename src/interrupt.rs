//! Cooperative cancellation shared by the script engine and every blocking primitive.
//!
//! Ctrl-C sets the flag; the script engine's progress callback turns it into an error scripts
//! cannot catch, and waits in primitives wake up through the `Notify`. The REPL resets it before
//! each statement so a cancelled statement does not poison the session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    raised: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything running to stop.
    pub fn raise(&self) {
        self.inner.raised.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_raised(&self) -> bool {
        self.inner.raised.load(Ordering::SeqCst)
    }

    /// Clears the flag (the REPL does this before each statement).
    pub fn reset(&self) {
        self.inner.raised.store(false, Ordering::SeqCst);
    }

    /// Completes once [`raise`](Self::raise) has been called.
    pub async fn raised(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raised_wakes_waiters_and_reset_clears() {
        let interrupt = Interrupt::new();
        let waiter = {
            let i = interrupt.clone();
            tokio::spawn(async move { i.raised().await })
        };
        tokio::task::yield_now().await;
        interrupt.raise();
        waiter.await.unwrap();
        assert!(interrupt.is_raised());
        interrupt.reset();
        assert!(!interrupt.is_raised());
    }
}
