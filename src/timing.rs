//! Where a run's time goes: per step, the wall time, the time spent waiting on OpenMLDB (by
//! kind), and the measures a component's lower bound is made of. Printed at the end of every
//! run and emitted as one `audit` event ([`TimingReport`]); scripts read it with
//! `upgrade::timing()`.
//!
//! The [`Timing`] ledger belongs to the script host. The cluster code reaches it through a
//! task-local that `Host::block_on` sets ([`recording`]): a wait marks itself with a guard
//! ([`waiting`]) and a measured operation reports a [`Sample`] ([`sample`]). Without a ledger
//! (the `status` command, tests of the cluster code) both do nothing.
//!
//! Accounting:
//! * Time is cut into segments at every change of the current step (`journal::step` entering
//!   or leaving one), so each instant of the run belongs to exactly one step, or to "between
//!   steps". A nested step's time is its own, not its parent's.
//! * Waits of moves that run side by side overlap. Each kind of wait is counted as the union of
//!   its intervals, and "waiting on OpenMLDB" as the union of all of them, so it never exceeds
//!   the step's wall time. Kinds that overlap each other (one move catching up while another's
//!   op is queued) are each counted in full: the kinds of a row can add up to more than its
//!   waiting time. Own work and polling is the rest: the step's wall time minus its waiting.
//! * The lower bound of a component (every step named `<role> <endpoint>: ...`) is what
//!   OpenMLDB makes it take when it goes alone, as measured in the same run: its waits for
//!   processes stopping and starting and for ZooKeeper sessions expiring (a restarted tablet or
//!   nameserver cannot register before its old session's node is gone, C§1.3, C§1.2), plus per
//!   step its slowest partition load and its slowest ChangeLeader op out and back: the
//!   partitions of a step are loaded and moved side by side, so no schedule finishes the step
//!   before its slowest one. A run's lower bound is the sum over its components; the steps
//!   of no component (pre-flight, final verification) count for nothing in it.
//! * Steps an earlier run did (a resumed run skips them) count as 0 s; the report says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a wait on OpenMLDB waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// A nameserver op waiting in its queue (kInited, C§3.2, C§3.3).
    OpQueued,
    /// A nameserver op running its tasks (kDoing).
    OpRunning,
    /// A replica loading, a tablet becoming healthy.
    Loading,
    /// A follower catching up with its leader.
    CatchUp,
    /// A ZooKeeper session of a stopped process expiring; a nameserver leader being elected.
    Session,
    /// A process stopping: `start.sh stop`, its processes exiting, its port freed.
    Stopping,
    /// A process starting: `start.sh start` until it answers and is registered.
    Starting,
}

const KINDS: usize = 7;

impl WaitKind {
    pub const ALL: [WaitKind; KINDS] = [
        WaitKind::OpQueued,
        WaitKind::OpRunning,
        WaitKind::Loading,
        WaitKind::CatchUp,
        WaitKind::Session,
        WaitKind::Stopping,
        WaitKind::Starting,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The key in reports and the audit event.
    pub fn key(self) -> &'static str {
        match self {
            WaitKind::OpQueued => "op_queued",
            WaitKind::OpRunning => "op_running",
            WaitKind::Loading => "loading",
            WaitKind::CatchUp => "catch_up",
            WaitKind::Session => "session",
            WaitKind::Stopping => "stopping",
            WaitKind::Starting => "starting",
        }
    }

    /// How the table names it.
    fn label(self) -> &'static str {
        match self {
            WaitKind::OpQueued => "op queued",
            WaitKind::OpRunning => "op running",
            WaitKind::Loading => "loading",
            WaitKind::CatchUp => "catch-up",
            WaitKind::Session => "session",
            WaitKind::Stopping => "stopping",
            WaitKind::Starting => "starting",
        }
    }
}

/// One measured operation a lower bound is made of; a step keeps the longest of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A ChangeLeader op moving a leader off the tablet (drain), from kDoing to done.
    ChangeLeaderOut,
    /// A ChangeLeader op moving a leader back to the tablet (restore), from kDoing to done.
    ChangeLeaderBack,
    /// One partition loaded on a restarted tablet (recover data): its RecoverTable op from
    /// kDoing to done, or its LoadTable until the replica is loaded.
    Load,
}

const SAMPLES: usize = 3;

impl Sample {
    fn index(self) -> usize {
        self as usize
    }
}

/// The time of one step (or of the time between steps).
#[derive(Debug, Clone)]
struct Bucket {
    /// None: between steps.
    step: Option<String>,
    wall: Duration,
    /// The union of every wait on OpenMLDB.
    waited: Duration,
    /// The union of each kind of wait.
    by_kind: [Duration; KINDS],
    /// The longest of each [`Sample`].
    longest: [Duration; SAMPLES],
    /// Done by an earlier run and skipped.
    skipped: bool,
    failed: bool,
}

impl Bucket {
    fn new(step: Option<String>) -> Self {
        Bucket {
            step,
            wall: Duration::ZERO,
            waited: Duration::ZERO,
            by_kind: [Duration::ZERO; KINDS],
            longest: [Duration::ZERO; SAMPLES],
            skipped: false,
            failed: false,
        }
    }
}

/// The ledger's state; every method takes the instant it happens at, read under the lock, so
/// the instants it sees never go back.
#[derive(Debug, Clone)]
struct Ledger {
    /// Index 0 is the time between steps; steps in the order they first ran.
    buckets: Vec<Bucket>,
    /// The open steps, innermost last.
    open: Vec<usize>,
    segment_start: Instant,
    active: [u32; KINDS],
    since: [Instant; KINDS],
    active_any: u32,
    since_any: Instant,
}

impl Ledger {
    fn new(now: Instant) -> Self {
        Ledger {
            buckets: vec![Bucket::new(None)],
            open: Vec::new(),
            segment_start: now,
            active: [0; KINDS],
            since: [now; KINDS],
            active_any: 0,
            since_any: now,
        }
    }

    fn current(&self) -> usize {
        self.open.last().copied().unwrap_or(0)
    }

    /// Closes the current segment at `now`: its wall time and the waits still open go to the
    /// current bucket, and the open waits go on in the next segment.
    fn cut(&mut self, now: Instant) {
        let b = self.current();
        let bucket = &mut self.buckets[b];
        bucket.wall += now.saturating_duration_since(self.segment_start);
        for k in 0..KINDS {
            if self.active[k] > 0 {
                bucket.by_kind[k] += now.saturating_duration_since(self.since[k]);
                self.since[k] = now;
            }
        }
        if self.active_any > 0 {
            bucket.waited += now.saturating_duration_since(self.since_any);
            self.since_any = now;
        }
        self.segment_start = now;
    }

    fn bucket(&mut self, step: &str) -> usize {
        match self.buckets.iter().position(|b| b.step.as_deref() == Some(step)) {
            Some(i) => i,
            None => {
                self.buckets.push(Bucket::new(Some(step.to_string())));
                self.buckets.len() - 1
            }
        }
    }

    fn enter(&mut self, step: &str, now: Instant) {
        self.cut(now);
        let b = self.bucket(step);
        self.open.push(b);
    }

    fn leave(&mut self, failed: bool, now: Instant) {
        self.cut(now);
        if let Some(b) = self.open.pop() {
            self.buckets[b].failed |= failed;
        }
    }

    fn skip(&mut self, step: &str) {
        let b = self.bucket(step);
        self.buckets[b].skipped = true;
    }

    fn wait_start(&mut self, kind: WaitKind, now: Instant) {
        let k = kind.index();
        if self.active[k] == 0 {
            self.since[k] = now;
        }
        self.active[k] += 1;
        if self.active_any == 0 {
            self.since_any = now;
        }
        self.active_any += 1;
    }

    fn wait_end(&mut self, kind: WaitKind, now: Instant) {
        let k = kind.index();
        let b = self.current();
        if self.active[k] > 0 {
            self.active[k] -= 1;
            if self.active[k] == 0 {
                self.buckets[b].by_kind[k] += now.saturating_duration_since(self.since[k]);
            }
        }
        if self.active_any > 0 {
            self.active_any -= 1;
            if self.active_any == 0 {
                self.buckets[b].waited += now.saturating_duration_since(self.since_any);
            }
        }
    }

    fn sample(&mut self, sample: Sample, took: Duration) {
        let b = self.current();
        let longest = &mut self.buckets[b].longest[sample.index()];
        *longest = (*longest).max(took);
    }

    /// The report as of `now`, waits still open counted up to it.
    fn report(&self, now: Instant) -> TimingReport {
        let mut ledger = self.clone();
        ledger.cut(now);
        TimingReport::from_buckets(&ledger.buckets)
    }
}

/// The timing ledger of one run.
#[derive(Debug)]
pub struct Timing {
    ledger: Mutex<Ledger>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing::new()
    }
}

impl Timing {
    /// A ledger whose run starts now.
    pub fn new() -> Self {
        Timing { ledger: Mutex::new(Ledger::new(Instant::now())) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Ledger, Instant) -> R) -> R {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut ledger, Instant::now())
    }

    /// Step `name` starts (again): its time is counted until the clock is finished or dropped.
    pub fn step(self: &Arc<Self>, name: &str) -> StepClock {
        self.with(|l, now| l.enter(name, now));
        StepClock { timing: self.clone(), done: false }
    }

    /// Step `name` was done by an earlier run: it counts as 0 s, and the run as resumed.
    pub fn skipped(&self, name: &str) {
        self.with(|l, _| l.skip(name));
    }

    /// Where the run's time went so far.
    pub fn report(&self) -> TimingReport {
        self.with(|l, now| l.report(now))
    }
}

/// A running step; [`StepClock::finish`] ends it, dropping it ends it as failed.
pub struct StepClock {
    timing: Arc<Timing>,
    done: bool,
}

impl StepClock {
    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.timing.with(|l, now| l.leave(!ok, now));
    }
}

impl Drop for StepClock {
    fn drop(&mut self) {
        if !self.done {
            self.timing.with(|l, now| l.leave(true, now));
        }
    }
}

tokio::task_local! {
    static LEDGER: Arc<Timing>;
}

/// Runs `fut` with its waits and samples going to `timing`.
pub async fn recording<F: Future>(timing: Arc<Timing>, fut: F) -> F::Output {
    LEDGER.scope(timing, fut).await
}

fn ledger() -> Option<Arc<Timing>> {
    LEDGER.try_with(Arc::clone).ok()
}

/// Reports one measured operation to the ledger of the running script, if any.
pub fn sample(sample: Sample, took: Duration) {
    if let Some(timing) = ledger() {
        timing.with(|l, _| l.sample(sample, took));
    }
}

/// Marks the caller as waiting on OpenMLDB for `kind` until the guard is dropped; the kind can
/// change on the way ([`Waiting::set`]: an op moving from its queue to running).
pub fn waiting(kind: WaitKind) -> Waiting {
    let timing = ledger();
    let now = match &timing {
        Some(t) => t.with(|l, now| {
            l.wait_start(kind, now);
            now
        }),
        None => Instant::now(),
    };
    Waiting { timing, state: Mutex::new(WaitState { kind, since: now, running: Duration::ZERO }) }
}

#[derive(Debug)]
struct WaitState {
    kind: WaitKind,
    since: Instant,
    /// Time spent as [`WaitKind::OpRunning`] before `since`.
    running: Duration,
}

/// A wait in progress ([`waiting`]).
#[derive(Debug)]
pub struct Waiting {
    timing: Option<Arc<Timing>>,
    state: Mutex<WaitState>,
}

impl Waiting {
    fn state(&self) -> std::sync::MutexGuard<'_, WaitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wait goes on as `kind` from now.
    pub fn set(&self, kind: WaitKind) {
        let mut state = self.state();
        if state.kind == kind {
            return;
        }
        let now = match &self.timing {
            Some(t) => t.with(|l, now| {
                l.wait_end(state.kind, now);
                l.wait_start(kind, now);
                now
            }),
            None => Instant::now(),
        };
        if state.kind == WaitKind::OpRunning {
            let ran = now.saturating_duration_since(state.since);
            state.running += ran;
        }
        state.kind = kind;
        state.since = now;
    }

    /// How long the wait was [`WaitKind::OpRunning`] so far.
    pub fn running(&self) -> Duration {
        let state = self.state();
        let open = if state.kind == WaitKind::OpRunning { state.since.elapsed() } else { Duration::ZERO };
        state.running + open
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let kind = self.state().kind;
        if let Some(t) = &self.timing {
            t.with(|l, now| l.wait_end(kind, now));
        }
    }
}

/// Milliseconds, as the report counts.
fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The component a step belongs to: `tablet 127.0.0.1:10921` of `tablet 127.0.0.1:10921: stop`.
/// A batch of tablets upgraded together (`tablets 127.0.0.1:10921, 127.0.0.2:10921: start`)
/// counts as one component of the tablets phase: its steps wait for all of them at once.
pub fn component_of(step: &str) -> Option<&str> {
    let (prefix, _) = step.split_once(": ")?;
    let (role, endpoints) = prefix.split_once(' ')?;
    let known = ["nameserver", "tablet", "apiserver", "taskmanager"];
    let one = known.contains(&role) && !endpoints.contains(' ');
    let batch = role == "tablets" && endpoints.split(", ").all(|e| !e.is_empty() && !e.contains(' '));
    (!endpoints.is_empty() && (one || batch)).then_some(prefix)
}

/// The lower bound of a component, or the sum of several, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LowerBound {
    /// Waiting for its processes to stop.
    pub stop_ms: u64,
    /// Waiting for its old ZooKeeper session to expire, its processes to start and register,
    /// a nameserver leader to be elected.
    pub start_ms: u64,
    /// Its slowest partition load, per step.
    pub load_ms: u64,
    /// Its slowest ChangeLeader op moving a leader off it, per step.
    pub change_leader_out_ms: u64,
    /// Its slowest ChangeLeader op moving a leader back, per step.
    pub change_leader_back_ms: u64,
    pub total_ms: u64,
}

impl LowerBound {
    fn of(bucket: &Bucket) -> Self {
        let kind = |k: WaitKind| ms(bucket.by_kind[k.index()]);
        let longest = |s: Sample| ms(bucket.longest[s.index()]);
        let mut bound = LowerBound {
            stop_ms: kind(WaitKind::Stopping),
            start_ms: kind(WaitKind::Session) + kind(WaitKind::Starting),
            load_ms: longest(Sample::Load),
            change_leader_out_ms: longest(Sample::ChangeLeaderOut),
            change_leader_back_ms: longest(Sample::ChangeLeaderBack),
            total_ms: 0,
        };
        bound.total_ms =
            bound.stop_ms + bound.start_ms + bound.load_ms + bound.change_leader_out_ms + bound.change_leader_back_ms;
        bound
    }

    fn add(&mut self, other: &LowerBound) {
        self.stop_ms += other.stop_ms;
        self.start_ms += other.start_ms;
        self.load_ms += other.load_ms;
        self.change_leader_out_ms += other.change_leader_out_ms;
        self.change_leader_back_ms += other.change_leader_back_ms;
        self.total_ms += other.total_ms;
    }
}

/// The time of one step, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    pub step: String,
    pub component: Option<String>,
    pub total_ms: u64,
    /// The union of its waits on OpenMLDB.
    pub waiting_ms: u64,
    /// Own work and polling: total minus waiting.
    pub own_ms: u64,
    /// Each kind of wait ([`WaitKind::key`]), the kinds that occurred.
    pub waiting_for: BTreeMap<String, u64>,
    /// Its part of its component's lower bound (zeros for a step of no component).
    pub lower_bound: LowerBound,
    pub skipped: bool,
    pub failed: bool,
}

/// One row of the table: a phase (a role's components, or a step of no component), or a
/// component within its phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimingRow {
    pub phase: String,
    /// Set on a component's row; a phase's row sums its components.
    pub component: Option<String>,
    pub total_ms: u64,
    pub waiting_ms: u64,
    pub own_ms: u64,
    pub waiting_for: BTreeMap<String, u64>,
    /// Zero for a phase of no component.
    pub lower_bound: LowerBound,
    /// Steps of the row an earlier run did (counted as 0 s).
    pub skipped_steps: usize,
    pub failed: bool,
}

impl TimingRow {
    fn new(phase: &str, component: Option<&str>) -> Self {
        TimingRow {
            phase: phase.to_string(),
            component: component.map(str::to_string),
            total_ms: 0,
            waiting_ms: 0,
            own_ms: 0,
            waiting_for: BTreeMap::new(),
            lower_bound: LowerBound::default(),
            skipped_steps: 0,
            failed: false,
        }
    }

    fn add(&mut self, step: &StepTiming) {
        self.total_ms += step.total_ms;
        self.waiting_ms += step.waiting_ms;
        self.own_ms += step.own_ms;
        for (kind, t) in &step.waiting_for {
            *self.waiting_for.entry(kind.clone()).or_default() += t;
        }
        self.lower_bound.add(&step.lower_bound);
        self.skipped_steps += usize::from(step.skipped);
        self.failed |= step.failed;
    }
}

/// Where a run's time went: per step, per phase and component, and the lower bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimingReport {
    /// The run so far: every step and the time between them.
    pub run_ms: u64,
    pub waiting_ms: u64,
    pub own_ms: u64,
    /// The sum of the components' lower bounds.
    pub lower_bound_ms: u64,
    /// run_ms / lower_bound_ms; None while the lower bound is 0.
    pub ratio: Option<f64>,
    /// Some steps were done by an earlier run (they count as 0 s).
    pub resumed: bool,
    pub skipped_steps: usize,
    /// Phases in the order they first ran, each followed by its components.
    pub rows: Vec<TimingRow>,
    /// Every step in the order it first ran.
    pub steps: Vec<StepTiming>,
    /// The time outside every step.
    pub between_steps: StepTiming,
}

/// The phase of a component: its role in the plural.
fn phase_of(component: &str) -> String {
    let role = component.split(' ').next().unwrap_or(component);
    if role.ends_with('s') {
        role.to_string()
    } else {
        format!("{role}s")
    }
}

const BETWEEN_STEPS: &str = "between steps";

impl TimingReport {
    fn from_buckets(buckets: &[Bucket]) -> Self {
        let step_of = |b: &Bucket| {
            let name = b.step.clone().unwrap_or_else(|| BETWEEN_STEPS.to_string());
            let component = b.step.as_deref().and_then(component_of).map(str::to_string);
            let (total_ms, waiting_ms) = (ms(b.wall), ms(b.waited).min(ms(b.wall)));
            let waiting_for = WaitKind::ALL
                .iter()
                .filter(|k| !b.by_kind[k.index()].is_zero())
                .map(|k| (k.key().to_string(), ms(b.by_kind[k.index()])))
                .collect();
            let lower_bound = if component.is_some() { LowerBound::of(b) } else { LowerBound::default() };
            StepTiming {
                step: name,
                component,
                total_ms,
                waiting_ms,
                own_ms: total_ms - waiting_ms,
                waiting_for,
                lower_bound,
                skipped: b.skipped,
                failed: b.failed,
            }
        };
        let between_steps = step_of(&buckets[0]);
        let steps: Vec<StepTiming> = buckets[1..].iter().map(step_of).collect();
        // Phases in the order they first ran; components under their phase in the same order.
        let mut rows: Vec<TimingRow> = Vec::new();
        for step in &steps {
            let (phase, component) = match &step.component {
                Some(c) => (phase_of(c), Some(c.as_str())),
                None => (step.step.clone(), None),
            };
            let phase_at = match rows.iter().position(|r| r.phase == phase && r.component.is_none()) {
                Some(i) => i,
                None => {
                    rows.push(TimingRow::new(&phase, None));
                    rows.len() - 1
                }
            };
            rows[phase_at].add(step);
            if let Some(component) = component {
                let at = rows.iter().position(|r| r.component.as_deref() == Some(component));
                let at = at.unwrap_or_else(|| {
                    // After the phase's last component.
                    let end = rows[phase_at + 1..].iter().take_while(|r| r.component.is_some()).count();
                    rows.insert(phase_at + 1 + end, TimingRow::new(&phase, Some(component)));
                    phase_at + 1 + end
                });
                rows[at].add(step);
            }
        }
        let mut run = TimingRow::new("run", None);
        for step in steps.iter().chain([&between_steps]) {
            run.add(step);
        }
        let ratio = (run.lower_bound.total_ms > 0).then(|| run.total_ms as f64 / run.lower_bound.total_ms as f64);
        TimingReport {
            run_ms: run.total_ms,
            waiting_ms: run.waiting_ms,
            own_ms: run.own_ms,
            lower_bound_ms: run.lower_bound.total_ms,
            ratio,
            resumed: run.skipped_steps > 0,
            skipped_steps: run.skipped_steps,
            rows,
            steps,
            between_steps,
        }
    }

    /// Whether any step ran or was skipped (a plan runs none).
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    /// The table printed at the end of a run, with the lower bound and the ratio under it. A
    /// phase's row sums its components; the details (skipped steps, lower bound's parts, kinds
    /// of waiting) are on the component rows.
    pub fn render(&self) -> String {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["phase / component", "total", "OpenMLDB", "own work", "lower bound", "waiting for"]);
        let between = TimingRow {
            phase: BETWEEN_STEPS.into(),
            waiting_for: self.between_steps.waiting_for.clone(),
            total_ms: self.between_steps.total_ms,
            waiting_ms: self.between_steps.waiting_ms,
            own_ms: self.between_steps.own_ms,
            ..TimingRow::new(BETWEEN_STEPS, None)
        };
        for (i, row) in self.rows.iter().chain([&between]).enumerate() {
            let has_components = row.component.is_none()
                && self.rows.get(i + 1).is_some_and(|next| next.component.is_some() && next.phase == row.phase);
            let mut name = match &row.component {
                Some(c) => format!("  {c}"),
                None => row.phase.clone(),
            };
            if row.failed {
                name.push_str(" FAILED");
            }
            if row.skipped_steps > 0 && !has_components {
                name.push_str(&format!(" ({} skipped)", row.skipped_steps));
            }
            let bound = match (row.component.is_some(), has_components) {
                (true, _) => bound_cell(&row.lower_bound),
                (false, true) => secs(row.lower_bound.total_ms),
                (false, false) => "-".into(),
            };
            let kinds = if has_components { String::new() } else { kinds_cell(&row.waiting_for) };
            table.add_row([name, secs(row.total_ms), secs(row.waiting_ms), secs(row.own_ms), bound, kinds]);
        }
        table.add_row([
            "run".to_string(),
            secs(self.run_ms),
            secs(self.waiting_ms),
            secs(self.own_ms),
            secs(self.lower_bound_ms),
            String::new(),
        ]);
        for i in 1..=3 {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
        let mut text = String::from("where the run's time went:\n");
        for line in table.to_string().lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str(
            "OpenMLDB: waiting on OpenMLDB (ops queued or running, replicas loading, followers catching up, \
             ZooKeeper sessions expiring, processes stopping and starting); own work: the rest, ours and our polling\n",
        );
        text.push_str(
            "lower bound: per component, its waits to stop and start, plus per step its slowest partition load and \
             slowest ChangeLeader op out and back (moves and loads run side by side), as measured in this run\n",
        );
        if self.resumed {
            text.push_str(&format!(
                "resumed run: {} step(s) done by an earlier run count as 0s here\n",
                self.skipped_steps
            ));
        }
        match self.ratio {
            Some(ratio) => text.push_str(&format!(
                "run time / lower bound = {} / {} = {ratio:.2}×",
                secs(self.run_ms),
                secs(self.lower_bound_ms)
            )),
            None => text.push_str("run time / lower bound: no component was stopped, started or moved"),
        }
        text
    }
}

/// `12.3s`.
fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// A component's lower bound with its nonzero parts: `12.3s = stop 0.5 + start 9.1 + load 2.0`.
fn bound_cell(bound: &LowerBound) -> String {
    let parts: Vec<String> = [
        ("stop", bound.stop_ms),
        ("start", bound.start_ms),
        ("load", bound.load_ms),
        ("ChangeLeader out", bound.change_leader_out_ms),
        ("back", bound.change_leader_back_ms),
    ]
    .iter()
    .filter(|(_, t)| *t > 0)
    .map(|(name, t)| format!("{name} {:.1}", *t as f64 / 1000.0))
    .collect();
    if parts.is_empty() {
        secs(bound.total_ms)
    } else {
        format!("{} = {}", secs(bound.total_ms), parts.join(" + "))
    }
}

/// The kinds of waiting (50 ms or more), largest first: `op queued 3.1, catch-up 0.4`.
fn kinds_cell(kinds: &BTreeMap<String, u64>) -> String {
    let mut list: Vec<(&str, u64)> = WaitKind::ALL
        .iter()
        .filter_map(|k| kinds.get(k.key()).filter(|t| **t >= 50).map(|t| (k.label(), *t)))
        .collect();
    list.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    list.iter().map(|(label, t)| format!("{label} {:.1}", *t as f64 / 1000.0)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn overlapping_waits_count_once_and_each_kind_as_its_union() {
        let t0 = Instant::now();
        let mut l = Ledger::new(t0);
        l.enter("tablet 10.0.0.1:10921: drain leaders", at(t0, 1000));
        // Two moves side by side: queued from 2 s and 3 s until 4 s and 6 s; one catches up
        // 5-8 s while the other's op runs 6-7 s.
        l.wait_start(WaitKind::OpQueued, at(t0, 2000));
        l.wait_start(WaitKind::OpQueued, at(t0, 3000));
        l.wait_end(WaitKind::OpQueued, at(t0, 4000));
        l.wait_start(WaitKind::CatchUp, at(t0, 5000));
        l.wait_end(WaitKind::OpQueued, at(t0, 6000));
        l.wait_start(WaitKind::OpRunning, at(t0, 6000));
        l.wait_end(WaitKind::OpRunning, at(t0, 7000));
        l.wait_end(WaitKind::CatchUp, at(t0, 8000));
        l.leave(false, at(t0, 10_000));
        let r = l.report(at(t0, 10_000));
        let step = &r.steps[0];
        assert_eq!(step.total_ms, 9000);
        // 2-8 s waiting: the union, though the kinds add up to 4 + 3 + 1 = 8 s.
        assert_eq!(step.waiting_ms, 6000);
        assert_eq!(step.own_ms, 3000);
        assert_eq!(step.waiting_for["op_queued"], 4000);
        assert_eq!(step.waiting_for["catch_up"], 3000);
        assert_eq!(step.waiting_for["op_running"], 1000);
        assert_eq!(r.between_steps.total_ms, 1000);
        assert_eq!(r.run_ms, 10_000);
        assert_eq!(r.waiting_ms, 6000);
    }

    #[test]
    fn a_wait_across_steps_is_split_at_the_step_boundary() {
        let t0 = Instant::now();
        let mut l = Ledger::new(t0);
        l.wait_start(WaitKind::Session, at(t0, 500));
        l.enter("nameserver 10.0.0.1:7527: leader elected", at(t0, 1000));
        l.wait_end(WaitKind::Session, at(t0, 3000));
        l.leave(false, at(t0, 4000));
        // Still open when the report is made: counted up to now, in the step it is in.
        l.wait_start(WaitKind::Loading, at(t0, 4500));
        let r = l.report(at(t0, 5000));
        assert_eq!(r.steps[0].waiting_ms, 2000);
        assert_eq!(r.steps[0].total_ms, 3000);
        assert_eq!(r.between_steps.total_ms, 2000);
        assert_eq!(r.between_steps.waiting_for["session"], 500);
        assert_eq!(r.between_steps.waiting_for["loading"], 500);
        assert_eq!(r.between_steps.waiting_ms, 1000);
        assert_eq!(r.run_ms, 5000);
    }

    #[test]
    fn a_nested_step_takes_its_own_time_from_its_parent() {
        let t0 = Instant::now();
        let mut l = Ledger::new(t0);
        l.enter("outer", at(t0, 0));
        l.enter("inner", at(t0, 1000));
        l.leave(true, at(t0, 3000));
        l.leave(false, at(t0, 4000));
        let r = l.report(at(t0, 4000));
        assert_eq!((r.steps[0].step.as_str(), r.steps[0].total_ms, r.steps[0].failed), ("outer", 2000, false));
        assert_eq!((r.steps[1].step.as_str(), r.steps[1].total_ms, r.steps[1].failed), ("inner", 2000, true));
        assert_eq!(r.run_ms, 4000);
    }

    /// A tablet's steps as the stock flow names them, with waits and samples in them.
    fn tablet_run() -> TimingReport {
        let t0 = Instant::now();
        let mut l = Ledger::new(t0);
        let ep = "tablet 10.0.0.2:10921";
        l.enter("pre-flight checks", at(t0, 0));
        l.leave(false, at(t0, 2000));
        // Drain: moves side by side, the slowest ChangeLeader op ran 1.5 s.
        l.enter(&format!("{ep}: drain leaders"), at(t0, 2000));
        l.sample(Sample::ChangeLeaderOut, Duration::from_millis(900));
        l.sample(Sample::ChangeLeaderOut, Duration::from_millis(1500));
        l.leave(false, at(t0, 6000));
        l.enter(&format!("{ep}: stop"), at(t0, 6000));
        l.wait_start(WaitKind::Stopping, at(t0, 6200));
        l.wait_end(WaitKind::Stopping, at(t0, 7200));
        l.leave(false, at(t0, 7500));
        l.enter(&format!("{ep}: start"), at(t0, 8000));
        l.wait_start(WaitKind::Session, at(t0, 8000));
        l.wait_end(WaitKind::Session, at(t0, 9000));
        l.wait_start(WaitKind::Starting, at(t0, 9000));
        l.wait_end(WaitKind::Starting, at(t0, 11_000));
        l.leave(false, at(t0, 11_000));
        l.enter(&format!("{ep}: recover data"), at(t0, 11_000));
        l.sample(Sample::Load, Duration::from_millis(3000));
        l.sample(Sample::Load, Duration::from_millis(2000));
        l.leave(false, at(t0, 20_000));
        l.skip(&format!("{ep}: verify"));
        l.enter(&format!("{ep}: restore leaders"), at(t0, 20_000));
        l.sample(Sample::ChangeLeaderBack, Duration::from_millis(500));
        l.leave(false, at(t0, 22_000));
        // A ChangeLeader outside any component's step is no component's lower bound.
        l.enter("restore leader placement", at(t0, 22_000));
        l.sample(Sample::ChangeLeaderBack, Duration::from_millis(700));
        l.leave(false, at(t0, 23_000));
        l.report(at(t0, 24_000))
    }

    #[test]
    fn the_lower_bound_adds_stop_start_slowest_load_and_one_change_leader_each_way() {
        let r = tablet_run();
        let bound = LowerBound {
            stop_ms: 1000,
            start_ms: 3000,
            load_ms: 3000,
            change_leader_out_ms: 1500,
            change_leader_back_ms: 500,
            total_ms: 9000,
        };
        let row = r.rows.iter().find(|r| r.component.as_deref() == Some("tablet 10.0.0.2:10921")).unwrap();
        assert_eq!(row.lower_bound, bound);
        assert_eq!(r.lower_bound_ms, 9000);
        assert_eq!(r.run_ms, 24_000);
        assert_eq!(r.ratio, Some(24_000.0 / 9000.0));
        assert!(r.resumed);
        assert_eq!(r.skipped_steps, 1);
        assert_eq!(row.skipped_steps, 1);
    }

    #[test]
    fn rows_are_phases_with_their_components_and_add_up_to_the_run() {
        let r = tablet_run();
        let names: Vec<String> =
            r.rows.iter().map(|r| r.component.clone().map_or(r.phase.clone(), |c| format!("  {c}"))).collect();
        assert_eq!(names, ["pre-flight checks", "tablets", "  tablet 10.0.0.2:10921", "restore leader placement"]);
        let phases: u64 = r.rows.iter().filter(|r| r.component.is_none()).map(|r| r.total_ms).sum();
        assert_eq!(phases + r.between_steps.total_ms, r.run_ms);
        for row in &r.rows {
            assert!(row.waiting_ms <= row.total_ms, "{row:?}");
            assert_eq!(row.waiting_ms + row.own_ms, row.total_ms, "{row:?}");
        }
        let text = r.render();
        assert!(text.contains("run time / lower bound = 24.0s / 9.0s = 2.67×"), "{text}");
        assert!(text.contains("resumed run: 1 step(s) done by an earlier run count as 0s here"), "{text}");
        assert!(text.contains("9.0s = stop 1.0 + start 3.0 + load 3.0 + ChangeLeader out 1.5 + back 0.5"), "{text}");
    }

    #[test]
    fn no_lower_bound_means_no_ratio() {
        let t0 = Instant::now();
        let mut l = Ledger::new(t0);
        l.enter("final verification", at(t0, 0));
        l.leave(false, at(t0, 1000));
        let r = l.report(at(t0, 1000));
        assert_eq!((r.lower_bound_ms, r.ratio), (0, None));
        assert!(r.render().contains("run time / lower bound: no component was stopped, started or moved"));
    }

    #[test]
    fn components_are_named_by_role_and_endpoint() {
        assert_eq!(component_of("tablet 127.0.0.1:10921: drain leaders"), Some("tablet 127.0.0.1:10921"));
        assert_eq!(component_of("nameserver ns-1:7527: leader elected"), Some("nameserver ns-1:7527"));
        assert_eq!(component_of("pre-flight checks"), None);
        assert_eq!(component_of("restore leader placement: moves"), None);
        // A batch of tablets is one component of the tablets phase.
        let batch = component_of("tablets 127.0.0.1:10921, 127.0.0.2:10921: start");
        assert_eq!(batch, Some("tablets 127.0.0.1:10921, 127.0.0.2:10921"));
        assert_eq!(phase_of(batch.unwrap_or_default()), "tablets");
        assert_eq!(component_of("tablets two words: start"), None);
    }

    #[tokio::test]
    async fn waits_report_to_the_ledger_of_the_task_and_an_op_counts_its_running_time() {
        let timing = Arc::new(Timing::new());
        let clock = timing.step("tablet 10.0.0.1:1: drain leaders");
        let running = recording(timing.clone(), async {
            let w = waiting(WaitKind::OpQueued);
            tokio::time::sleep(Duration::from_millis(30)).await;
            w.set(WaitKind::OpRunning);
            tokio::time::sleep(Duration::from_millis(40)).await;
            let running = w.running();
            sample(Sample::ChangeLeaderOut, running);
            running
        })
        .await;
        clock.finish(true);
        assert!(running >= Duration::from_millis(40), "{running:?}");
        let r = timing.report();
        let step = &r.steps[0];
        assert!(step.waiting_for["op_queued"] >= 30, "{step:?}");
        assert!(step.waiting_for["op_running"] >= 40, "{step:?}");
        assert!(step.waiting_ms <= step.total_ms);
        assert_eq!(step.lower_bound.change_leader_out_ms, running.as_millis() as u64);
        // Outside a recording task nothing is reported, and nothing fails.
        let w = waiting(WaitKind::Loading);
        drop(w);
        sample(Sample::Load, Duration::from_secs(1));
        assert_eq!(timing.report().steps[0].lower_bound.load_ms, 0);
    }
}
