use super::*;

#[test]
fn a_producer_passed_over_for_long_goes_next_whatever_it_streamed() {
    let now = Instant::now();
    let long_ago = now.checked_sub(LONGEST_IN_LINE * 2).expect("the clock is past it");
    let thread = std::thread::current();
    let big = InLine { served: 100 << 20, ticket: 0, since: now, thread: thread.clone() };
    let small = InLine { served: 1 << 10, ticket: 1, since: now, thread };
    let mut q = TurnQueue { active: 0, waiting: vec![big, small], next_ticket: 2, floor: 0 };
    assert_eq!(q.next(), Some(1), "the least served goes first");
    q.waiting[0].since = long_ago;
    assert_eq!(q.next(), Some(0), "one that waited too long goes next");
}
use crate::error::Error;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

const SLICE: Duration = Duration::from_millis(20);

fn pacing(spinners: usize, streams: usize) -> Pacing {
    Pacing::with_limits(DEFAULT_SPIN_BUDGET, Limits { spinners, streams })
}

/// A pacing whose budget outlasts a busy machine's pauses, for tests
/// that count the tries of a yielding spin.
fn patient() -> Pacing {
    Pacing::with_limits(Duration::from_millis(20), Limits { spinners: 4, streams: 1 })
}

/// Waits until `n` producers stand in line.
fn until_in_line(pacing: &Pacing, n: usize) {
    while pacing.turns().waiting.len() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ok() -> Result<()> {
    Ok(())
}

/// One wait's spin beside a peer on another core.
fn spin(pacer: &mut Pacer, try_take: impl FnMut() -> bool) -> Spun {
    pacer.spin(try_take, || Placement::Apart)
}

#[test]
fn spinning_shrinks_while_spins_fail_probes_now_and_then_and_recovers_when_they_succeed() {
    let max = Duration::from_micros(200);
    let mut rate = SpinRate::default();
    assert_eq!(rate.budget(max), max);
    for _ in 0..8 {
        rate.record(false);
    }
    let shrunk = rate.budget(max);
    assert!(shrunk < max && !shrunk.is_zero(), "{shrunk:?}");
    for _ in 0..32 {
        rate.record(false);
    }
    let budgets: Vec<Duration> = (0..2 * PROBE_EVERY).map(|_| rate.budget(max)).collect();
    assert_eq!(budgets.iter().filter(|b| **b == max).count(), 2, "one probe in {PROBE_EVERY}");
    assert_eq!(budgets.iter().filter(|b| b.is_zero()).count(), 2 * PROBE_EVERY as usize - 2);
    for _ in 0..64 {
        rate.record(true);
    }
    assert!(rate.budget(max) > max * 9 / 10);
}

#[test]
fn a_waiter_whose_spins_never_pay_learns_to_stop_yield_spinning() {
    let mut pacer = patient().pacer();
    let mut tries = 0u32;
    // A fresh waiter yield-spins past the busy rounds.
    assert_eq!(
        spin(&mut pacer, || {
            tries += 1;
            false
        }),
        Spun::Missed
    );
    assert!(tries > 1 + SPIN_ROUNDS, "{tries} tries");
    for _ in 0..40 {
        spin(&mut pacer, || false);
    }
    // Now only the first try and the busy rounds, no yielding.
    let mut tries = 0u32;
    assert_eq!(
        spin(&mut pacer, || {
            tries += 1;
            false
        }),
        Spun::Missed
    );
    assert_eq!(tries, 1 + SPIN_ROUNDS);
}

#[test]
fn a_spin_that_catches_the_peer_takes_the_count() {
    // A budget no busy machine's pauses outlast: the spin ends when the
    // peer is caught, long before it (the count decides, not the clock).
    let mut pacer = Pacing::with_limits(Duration::from_secs(60), Limits { spinners: 4, streams: 1 }).pacer();
    assert_eq!(spin(&mut pacer, || true), Spun::Taken);
    let mut tries = 0u32;
    assert_eq!(
        spin(&mut pacer, || {
            tries += 1;
            tries == 200
        }),
        Spun::Taken
    );
    assert_eq!(tries, 200, "caught while yielding");
}

#[test]
fn a_zero_spin_budget_blocks_after_one_try() {
    let mut pacer = Pacing::with_limits(Duration::ZERO, Limits { spinners: 4, streams: 1 }).pacer();
    let mut tries = 0u32;
    assert_eq!(
        spin(&mut pacer, || {
            tries += 1;
            false
        }),
        Spun::Missed
    );
    assert_eq!(tries, 1);
}

#[test]
fn no_more_waiters_spin_at_once_than_the_limit_and_a_slot_given_back_is_free_again() {
    let pacing = pacing(2, 1);
    let slots: Vec<SpinSlot<'_>> = std::iter::from_fn(|| pacing.spin_slot()).take(10).collect();
    assert_eq!(slots.len(), 2);
    // With every slot taken, a waiter does not yield-spin.
    let mut pacer = pacing.pacer();
    let mut tries = 0u32;
    assert_eq!(
        spin(&mut pacer, || {
            tries += 1;
            false
        }),
        Spun::Missed
    );
    assert_eq!(tries, 1 + SPIN_ROUNDS);
    drop(slots);
    assert!(pacing.spin_slot().is_some());
}

#[test]
fn owners_do_not_share_spinners_or_turns() {
    let (a, b) = (pacing(1, 1), pacing(1, 1));
    let _spinning = a.spin_slot().unwrap();
    assert!(b.spin_slot().is_some());
    let _streaming = a.take_turn(SLICE, &ok).unwrap();
    b.take_turn(SLICE, &ok).expect("b's own turn");
}

#[test]
fn producers_beyond_the_limit_wait_their_turn_and_a_cancelled_one_leaves_the_line() {
    let pacing = pacing(2, 1);
    let held = pacing.take_turn(SLICE, &ok).unwrap();
    let cancelled = Arc::new(AtomicBool::new(false));
    let quitter = {
        let (pacing, cancelled) = (pacing.clone(), Arc::clone(&cancelled));
        std::thread::spawn(move || {
            let check = || if cancelled.load(Ordering::Relaxed) { Err(Error::Cancelled) } else { Ok(()) };
            pacing.take_turn(SLICE, &check).map(drop)
        })
    };
    until_in_line(&pacing, 1);
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let pacing = pacing.clone();
        std::thread::spawn(move || tx.send(pacing.take_turn(SLICE, &ok).map(drop)))
    };
    assert!(rx.recv_timeout(SLICE * 10).is_err(), "no turn while the only one is held");
    cancelled.store(true, Ordering::Relaxed);
    assert!(matches!(quitter.join().unwrap(), Err(Error::Cancelled)));
    assert!(rx.recv_timeout(SLICE * 5).is_err(), "still held");
    drop(held);
    rx.recv_timeout(Duration::from_secs(10)).expect("a turn once one is given back").unwrap();
    waiter.join().unwrap().unwrap();
    assert_eq!(pacing.turns().active, 0);
    assert!(pacing.turns().waiting.is_empty(), "the quitter left the line");
}

#[test]
fn turns_go_in_order_of_arrival() {
    let pacing = pacing(2, 1);
    let held = pacing.take_turn(SLICE, &ok).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut waiters = Vec::new();
    for i in 0..3 {
        let (mine, tx) = (pacing.clone(), tx.clone());
        waiters.push(std::thread::spawn(move || {
            let turn = mine.take_turn(SLICE, &ok).unwrap();
            tx.send(i).unwrap();
            drop(turn);
        }));
        // Each is in line before the next comes.
        until_in_line(&pacing, i + 1);
    }
    drop(held);
    let order: Vec<usize> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(order, [0, 1, 2]);
    for w in waiters {
        w.join().unwrap();
    }
}

#[test]
fn the_next_turn_goes_to_the_producer_that_streamed_least_and_a_newcomer_counts_from_the_floor() {
    let pacing = pacing(2, 1);
    let mut first = 10 * LINE_CREDIT;
    let held = pacing.take_turn_noting(SLICE, &mut first, &ok).unwrap();
    assert_eq!(pacing.turns().floor, first);
    let (tx, rx) = mpsc::channel();
    let mut waiters = Vec::new();
    // Arriving in this order, having streamed this much.
    for (i, served) in [(0, 12 * LINE_CREDIT), (1, 11 * LINE_CREDIT), (2, 0)] {
        let (mine, tx) = (pacing.clone(), tx.clone());
        waiters.push(std::thread::spawn(move || {
            let mut served = served;
            let turn = mine.take_turn_noting(SLICE, &mut served, &ok).unwrap();
            tx.send((i, served)).unwrap();
            drop(turn);
        }));
        until_in_line(&pacing, i + 1);
    }
    drop(held);
    let order: Vec<(usize, u64)> =
        (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    // The newcomer counted from the floor less the credit: still first.
    assert_eq!(order, [(2, 9 * LINE_CREDIT), (1, 11 * LINE_CREDIT), (0, 12 * LINE_CREDIT)]);
    for w in waiters {
        w.join().unwrap();
    }
}

#[test]
fn a_producer_gives_its_turn_back_after_a_turns_time_a_file_or_before_it_blocks() {
    let pacing = pacing(2, 1);
    let mut pacer = pacing.pacer();
    let mut other = pacing.pacer();
    pacer.take_turn(SLICE, &ok).unwrap();
    let started = Instant::now();
    pacer.streamed(TURN_CHECK_BYTES);
    assert!(pacer.has_turn() || started.elapsed() >= TURN_TIME);
    std::thread::sleep(TURN_TIME);
    pacer.streamed(TURN_CHECK_BYTES - 1);
    assert!(pacer.has_turn(), "the clock is read once per TURN_CHECK_BYTES");
    pacer.streamed(1);
    assert!(!pacer.has_turn(), "a turn's time");
    other.take_turn(SLICE, &ok).expect("free again");
    other.end_turn();
    pacer.take_turn(SLICE, &ok).unwrap();
    pacer.before_block();
    assert!(!pacer.has_turn(), "before blocking");
    pacer.take_turn(SLICE, &ok).unwrap();
    drop(pacer);
    other.take_turn(SLICE, &ok).expect("a dropped end gives its turn back");
}

#[test]
fn a_busy_end_on_its_peers_cpu_blocks_at_once_and_a_calm_one_spins_afresh() {
    let mut pacer = patient().pacer();
    pacer.set_load(Load::Busy);
    let mut tries = 0u32;
    let taking = |tries: &mut u32| {
        *tries += 1;
        false
    };
    assert_eq!(pacer.spin(|| taking(&mut tries), || Placement::SharedCore), Spun::Missed);
    assert_eq!(tries, 1, "no busy rounds, no yields");
    // Busy, but the peer could not come to this CPU: blocking at once would
    // wake it across CPUs behind other work for each frame; it spins.
    tries = 0;
    assert_eq!(pacer.spin(|| taking(&mut tries), || Placement::Apart), Spun::Missed);
    assert!(tries > 1, "a pair apart spins as on a calm machine: {tries}");
    pacer.set_load(Load::Calm);
    discouraged(&mut pacer);
    pacer.set_load(Load::Busy);
    pacer.woke(Duration::from_micros(10));
    pacer.set_load(Load::Calm);
    assert_eq!(pacer.learned.hits, HIT_ONE, "learns afresh");
}

/// A load watch's figures over time: run delay while calm, idle time
/// while busy, each advancing by its share of the elapsed time.
struct Machine {
    now: Instant,
    run_delay: Duration,
    idle: Duration,
    /// Tasks runnable at the end of a window, when the kernel says.
    runnable: Option<u32>,
}

impl Machine {
    fn new() -> Machine {
        Machine { now: Instant::now(), run_delay: Duration::ZERO, idle: Duration::ZERO, runnable: None }
    }

    /// `d` passes with the end off its CPU `waiting` of it and the
    /// CPUs idle `idle` CPUs' worth of it.
    fn pass(&mut self, d: Duration, waiting: f64, idle: f64) {
        self.now += d;
        self.run_delay += d.mul_f64(waiting);
        self.idle += d.mul_f64(idle);
    }

    fn figures(&self) -> Figures {
        Figures {
            waited: Some(self.run_delay.as_secs_f64()),
            idle: Some(self.idle.as_secs_f64()),
            runnable: self.runnable,
        }
    }

    fn look(&self, watch: &mut LoadWatch) -> Option<Load> {
        let figures = self.figures();
        watch.look(self.now, move || figures)
    }
}

#[test]
fn two_windows_of_waiting_for_a_cpu_make_the_machine_busy_for_a_spell() {
    let mut m = Machine::new();
    let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
    m.pass(BUSY_WINDOW / 2, 0.9, 0.0);
    assert_eq!(m.look(&mut watch), None, "the window is not over");
    m.pass(BUSY_WINDOW / 2, 0.9, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm), "one busy window");
    m.pass(BUSY_WINDOW, 0.1, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm), "a calm one between");
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm));
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Busy), "two in a row");
    // Busy for a spell while no CPU idles, however long it waits.
    m.pass(BUSY_WINDOW / 2, 0.9, 0.0);
    assert_eq!(m.look(&mut watch), None, "the window is not over");
    m.pass(BUSY_SPELL / 2, 0.9, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Busy), "the spell is not over");
    m.pass(BUSY_SPELL / 2, 0.9, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm), "the spell is over: try calm");
    m.pass(BUSY_WINDOW, 0.1, 0.0);
    m.look(&mut watch);
    m.pass(BUSY_WINDOW, 0.1, 0.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm), "and it stays calm");
}

#[test]
fn a_busy_spell_ends_early_once_a_cpu_idles() {
    let mut m = Machine::new();
    let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
    for _ in 0..BUSY_WINDOWS {
        m.pass(BUSY_WINDOW, 0.9, 0.0);
        m.look(&mut watch);
    }
    assert_eq!(watch.load, Load::Busy);
    for _ in 0..5 {
        m.pass(BUSY_WINDOW, 0.9, 0.2);
        assert_eq!(m.look(&mut watch), Some(Load::Busy), "the other work holds the other CPU");
    }
    // The other work went (or the pair shares its CPU while another idles).
    m.pass(BUSY_WINDOW, 0.9, 1.0);
    assert_eq!(m.look(&mut watch), Some(Load::Calm), "a CPU to spare: calm, long before the spell is over");
}

#[test]
fn a_busy_pair_is_crowded_until_the_tasks_besides_it_leave_it_its_cpu() {
    let mut m = Machine::new();
    let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
    watch.cores = 2;
    for _ in 0..BUSY_WINDOWS {
        m.pass(BUSY_WINDOW, 0.9, 0.0);
        m.look(&mut watch);
    }
    assert_eq!(watch.load, Load::Busy);
    assert!(watch.crowded, "crowded until counted");
    // One busy loop on 2 CPUs: the pair's ends and the loop are runnable;
    // the loop can have the other CPU.
    m.runnable = Some(3);
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    m.look(&mut watch);
    assert!(watch.crowded, "one window does not change its mind");
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    m.look(&mut watch);
    assert!(!watch.crowded, "two in a row: the pair has its CPU to itself");
    // An instant with one end blocked changes nothing.
    m.runnable = Some(2);
    for _ in 0..4 {
        m.pass(BUSY_WINDOW, 0.5, 0.0);
        m.look(&mut watch);
        assert!(!watch.crowded, "both ends and one loop on 2 CPUs");
    }
    // A second busy loop: one of them shares the pair's CPU.
    m.runnable = Some(4);
    for _ in 0..BUSY_WINDOWS {
        m.pass(BUSY_WINDOW, 0.5, 0.0);
        m.look(&mut watch);
    }
    assert!(watch.crowded, "two loops and the pair on 2 CPUs");
    // One window that counts one end blocked changes nothing.
    m.runnable = Some(3);
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    m.look(&mut watch);
    m.runnable = Some(4);
    m.pass(BUSY_WINDOW, 0.5, 0.0);
    m.look(&mut watch);
    assert!(watch.crowded, "one window does not change its mind");
    // The kernel says nothing: crowded, the careful side.
    m.runnable = None;
    let mut other = LoadWatch::starting(m.now, Load::Busy, BUSY_SPELL, m.figures());
    m.pass(BUSY_WINDOW * 3, 0.5, 0.0);
    m.look(&mut other);
    assert!(other.crowded);
}

#[test]
fn a_watch_started_on_one_cpu_counts_the_machines_cpus_against_the_tasks_runnable() {
    // A server started under `taskset -c 0` watches from a thread that
    // may run on one CPU, but `/proc/loadavg` counts the whole machine's
    // tasks: one busy loop beside the pair on 2 CPUs leaves the pair its
    // CPU, and the pair is not crowded.
    let cpus = crate::os::sys::CpuSet::of_this_thread().expect("this thread's CPUs");
    let first = (0..crate::os::sys::CpuSet::CAPACITY).find(|&c| cpus.contains(c)).expect("a CPU");
    let machine = crate::os::sys::online_cpus().expect("the machine's CPUs");
    std::thread::spawn(move || {
        crate::os::sys::CpuSet::only(first).unwrap().apply_to_this_thread().unwrap();
        let mut m = Machine::new();
        let mut watch = LoadWatch::starting(m.now, Load::Busy, BUSY_SPELL, m.figures());
        assert_eq!(watch.cores, machine, "the machine's CPUs, not this thread's");
        // The pair's two ends and one task more than the CPUs it leaves.
        m.runnable = Some(2 + machine - 1);
        for _ in 0..BUSY_WINDOWS {
            m.pass(BUSY_WINDOW, 0.5, 0.0);
            m.look(&mut watch);
        }
        assert!(!watch.crowded || machine == 1, "{machine} CPUs, one of them for the other work");
    })
    .join()
    .unwrap();
}

#[test]
fn an_end_that_waits_for_its_peer_on_one_core_of_an_idle_machine_stays_calm() {
    let mut m = Machine::new();
    let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
    for _ in 0..10 {
        // Off its CPU most of the time, while the other CPU idles.
        m.pass(BUSY_WINDOW, 0.9, 1.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm));
    }
    m.pass(BUSY_WINDOW, 0.9, 0.5);
    m.look(&mut watch);
    m.pass(BUSY_WINDOW, 0.9, 0.5);
    assert_eq!(m.look(&mut watch), Some(Load::Busy), "no CPU to spare");
}

#[test]
fn a_spell_that_ends_busy_again_at_once_doubles_the_next() {
    let mut m = Machine::new();
    let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
    let busy = |m: &mut Machine, watch: &mut LoadWatch| {
        for _ in 0..BUSY_WINDOWS {
            m.pass(BUSY_WINDOW, 0.9, 0.0);
            m.look(watch);
        }
        assert_eq!(watch.load, Load::Busy);
    };
    busy(&mut m, &mut watch);
    assert_eq!(watch.spell, BUSY_SPELL);
    m.pass(BUSY_SPELL, 0.0, 0.0);
    m.look(&mut watch);
    assert_eq!(watch.load, Load::Calm);
    busy(&mut m, &mut watch);
    assert_eq!(watch.spell, BUSY_SPELL * 2, "busy again within a spell of trying");
    for _ in 0..10 {
        m.pass(watch.spell, 0.0, 0.0);
        m.look(&mut watch);
        busy(&mut m, &mut watch);
    }
    assert_eq!(watch.spell, BUSY_SPELL_MAX);
    m.pass(watch.spell, 0.0, 0.0);
    m.look(&mut watch);
    assert_eq!(watch.load, Load::Calm);
    m.pass(BUSY_SPELL_MAX * 2, 0.0, 1.0);
    m.look(&mut watch);
    busy(&mut m, &mut watch);
    assert_eq!(watch.spell, BUSY_SPELL, "calm for long: back to the shortest");
}

#[test]
fn without_the_kernels_figures_the_load_stays_calm() {
    let now = Instant::now();
    let none = Figures { waited: None, idle: None, runnable: None };
    let mut watch = LoadWatch::starting(now, Load::Calm, BUSY_SPELL, none);
    for i in 1..10 {
        assert_eq!(watch.look(now + BUSY_WINDOW * i, || none), None);
    }
    assert_eq!(watch.load, Load::Calm);
}

#[test]
fn a_busy_producer_blocks_a_turns_time_in_its_turn_before_it_gives_the_turn_back() {
    let pacing = pacing(2, 1);
    let mut pacer = pacing.pacer();
    assert_eq!(pacer.block_in_turn(), None, "no turn");
    pacer.take_turn(SLICE, &ok).unwrap();
    assert_eq!(pacer.block_in_turn(), None, "calm: spins, then gives the turn back");
    pacer.set_load(Load::Busy);
    assert_eq!(pacer.block_in_turn(), Some(TURN_TIME));
    pacer.before_block();
    assert_eq!(pacer.block_in_turn(), None);
}

#[test]
fn a_new_end_starts_from_the_load_its_owner_saw_last_if_lately() {
    let pacing = pacing(2, 1);
    let now = Instant::now();
    assert_eq!(pacing.recent_load(now), None);
    pacing.note_load(Load::Busy, BUSY_SPELL * 4, now);
    assert_eq!(pacing.recent_load(now + LOAD_MEMORY / 2), Some((Load::Busy, BUSY_SPELL * 4)));
    assert_eq!(pacing.recent_load(now + LOAD_MEMORY * 2), None, "too long ago");
    let mut pacer = pacing.pacer();
    assert_eq!(pacer.watch_load(|| Placement::Apart), Some(Load::Busy), "busy from its first wait");
    assert_eq!(pacer.load, Load::Busy);
    assert_eq!(pacer.watch.as_ref().unwrap().spell, BUSY_SPELL * 4, "for the spell its owner saw");
    pacing.note_load(Load::Calm, BUSY_SPELL, Instant::now());
    assert_eq!(pacing.pacer().watch_load(|| Placement::Apart), None, "calm: nothing to change");
}

/// Spins that fail until the waiter blocks at once, but for probes.
fn discouraged(pacer: &mut Pacer) {
    for _ in 0..40 {
        spin(pacer, || false);
    }
    assert!(pacer.learned.hits < HIT_FLOOR);
}

#[test]
fn a_producer_that_waited_in_line_starts_its_turn_spinning_again() {
    let pacing = pacing(2, 1);
    let mut first = pacing.pacer();
    first.take_turn(SLICE, &ok).unwrap();
    // Free at once: what it learned stays.
    discouraged(&mut first);
    first.end_turn();
    first.take_turn(SLICE, &ok).unwrap();
    assert!(first.learned.hits < HIT_FLOOR, "no line, nothing forgotten");
    let waiter = {
        let pacing = pacing.clone();
        std::thread::spawn(move || {
            let mut second = pacing.pacer();
            discouraged(&mut second);
            second.take_turn(SLICE, &ok).unwrap();
            second.learned.hits
        })
    };
    until_in_line(&pacing, 1);
    first.end_turn();
    assert_eq!(waiter.join().unwrap(), HIT_ONE, "forgotten after the line");
}

#[test]
fn a_long_block_forgets_and_a_quick_answer_after_blocking_at_once_counts_as_a_hit() {
    let mut pacer = patient().pacer();
    discouraged(&mut pacer);
    let low = pacer.learned.hits;
    // A probe: spun and missed; the block that follows teaches nothing.
    pacer.tried = Tried::Spun;
    pacer.woke(Duration::from_micros(10));
    assert_eq!(pacer.learned.hits, low);
    // Blocked at once, answered within the budget: spinning would have paid.
    let mut tries = 0;
    spin(&mut pacer, || {
        tries += 1;
        false
    });
    assert_eq!(tries, 1 + SPIN_ROUNDS, "blocked at once");
    pacer.woke(Duration::from_micros(10));
    assert!(pacer.learned.hits > low);
    pacer.woke(RELEARN_AFTER);
    assert_eq!(pacer.learned.hits, HIT_ONE);
}

#[test]
fn a_waiter_beside_its_peer_on_one_core_yields_at_once() {
    let mut pacer = patient().pacer();
    let mut tries = 0u32;
    let spun = pacer.spin(
        || {
            tries += 1;
            tries == 2
        },
        || Placement::SharedCore,
    );
    assert_eq!((spun, tries), (Spun::Taken, 2), "no busy rounds: the first yield caught it");
    // The placement is asked only when the count is not there at once.
    assert_eq!(pacer.spin(|| true, || unreachable!()), Spun::Taken);
}
