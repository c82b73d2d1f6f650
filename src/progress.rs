//! The live indicator of long waits: while a wait runs longer than a second, a spinner line on
//! stderr says what it waits for, for how long, out of how long, and what it last saw.
//!
//! Shown only when stderr is a terminal and the log is text ([`enable`]); in CI, in pipes and
//! with `--log-format json` every indicator is hidden and waits print nothing extra. Lines
//! printed while indicators are shown (progress lines, log events) go through [`suspend`] so
//! they are not torn by a redraw.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A wait shows its indicator once it has run this long.
const SHOW_AFTER: Duration = Duration::from_secs(1);

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::hidden()))
}

/// Draws indicators on stderr from now on (the caller checked it is a terminal).
pub fn enable() {
    bars().set_draw_target(ProgressDrawTarget::stderr());
}

/// Draws indicators on `target` (tests).
pub fn draw_to(target: ProgressDrawTarget) {
    bars().set_draw_target(target);
}

/// Runs `print` with the indicators cleared, then redraws them.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    bars().suspend(print)
}

/// A `tracing` writer for stderr that keeps the indicators intact.
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().lock().write_all(buf)).map(|_| buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The indicator of one wait; it disappears when dropped.
pub struct WaitIndicator {
    what: String,
    timeout: Duration,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl WaitIndicator {
    pub fn new(what: &str, timeout: Duration) -> Self {
        WaitIndicator { what: what.to_string(), timeout, started: Instant::now(), bar: None }
    }

    /// Records what the wait last saw; shows the indicator once the wait is long.
    pub fn update(&mut self, last: &str) {
        let elapsed = self.started.elapsed();
        if self.bar.is_none() && elapsed >= SHOW_AFTER {
            let bar = bars().add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "waiting for {} ({}s of {}s); last seen: {last}",
                self.what,
                elapsed.as_secs(),
                self.timeout.as_secs()
            ));
        }
    }
}

impl Drop for WaitIndicator {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            bars().remove(&bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wait::{wait_until, Check};
    use indicatif::InMemoryTerm;

    #[tokio::test]
    async fn a_long_wait_shows_what_it_waits_for_and_clears_when_done() {
        let term = InMemoryTerm::new(8, 160);
        draw_to(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let wait = tokio::spawn(wait_until("tablet 127.0.0.9:1 healthy", Duration::from_millis(1800), || async {
            Ok::<_, String>(Check::<()>::Waiting("kOffline".into()))
        }));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let shown = term.contents();
        assert!(shown.contains("waiting for tablet 127.0.0.9:1 healthy (1s of 1s); last seen: kOffline"), "{shown:?}");
        assert!(wait.await.expect("joined").is_err(), "the wait times out");
        assert_eq!(term.contents().trim(), "", "the indicator is cleared");
        draw_to(ProgressDrawTarget::hidden());
    }
}
