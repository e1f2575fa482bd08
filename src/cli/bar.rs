//! The client's progress on stderr, only on a terminal: a bar while a file
//! of 1 MiB or more arrives and, when more than one file is fetched, a line
//! of the whole run beneath it: bytes done of all bytes, and files done of
//! all, as `rsync --info=progress2` shows a run. The run's bytes are those
//! the server's listing gave (a tree, a pattern) or an upload's plan (the
//! local files' sizes), and each other file's size from its start; a file
//! that moves fewer bytes than counted (skipped,
//! failed) takes the rest off. Both fit the terminal's width: each template
//! has one part that takes the columns left (`{wide_bar}`) and fixed parts
//! that fit in 50 columns. A file resumed from a kept partial (`-C`) starts
//! its bar at the kept bytes, and its time left counts only the bytes that
//! arrived in this run (`time_left`).

use std::collections::VecDeque;
use std::time::Duration;

use crate::programs::{human_size, quote_name};
use crate::{FileResult, Progress};
use indicatif::{
    HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};

/// A file's bar: its name cut to 12 columns, the bar, bytes of all bytes,
/// the time left ([`time_left`]).
const FILE_TEMPLATE: &str = "{msg:12!} [{wide_bar}] {bytes}/{total_bytes} {left}";
/// The run's line: the bar of bytes done, then bytes done of all and files
/// done of all (in the message).
const RUN_TEMPLATE: &str = "[{wide_bar}] {msg}";
/// Files smaller than this get no bar of their own.
const BAR_MIN_SIZE: u64 = 1 << 20;

/// The bars of one run, when enabled.
#[derive(Debug)]
pub struct Bar {
    /// Where the bars are drawn; `None` when progress is not shown.
    multi: Option<MultiProgress>,
    /// The run's line, when more than one file is fetched.
    run: Option<ProgressBar>,
    /// The bar of the file arriving.
    file: Option<ProgressBar>,
    /// Bytes received in this run.
    bytes: u64,
    /// The bytes the run moves, as far as known.
    total: u64,
    /// Whether any of them is known (sizes planned, or a file started):
    /// until then the run's line shows files only, not `0 B of 0 B`.
    sized: bool,
    /// Files done, and in all.
    files_done: u64,
    files: u64,
    /// The sizes known before they start of the files whose results are
    /// still to come, in order ([`Progress::planned_sizes`]).
    planned: VecDeque<Option<u64>>,
    /// The file in progress: the bytes counted for it in `total`, and
    /// those that moved.
    current: Option<(u64, u64)>,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        Bar::drawn_on(enabled.then(ProgressDrawTarget::stderr))
    }

    /// Bars drawn on `target`, or none.
    fn drawn_on(target: Option<ProgressDrawTarget>) -> Bar {
        Bar {
            multi: target.map(MultiProgress::with_draw_target),
            run: None,
            file: None,
            bytes: 0,
            total: 0,
            sized: false,
            files_done: 0,
            files: 0,
            planned: VecDeque::new(),
            current: None,
        }
    }

    /// Runs `print` with the bars hidden, so that a line printed on the
    /// terminal does not mix with them.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(multi) => multi.suspend(print),
            None => print(),
        }
    }

    /// One more file of the run is done (as [`Progress::result`] says, for
    /// a run that has no [`FileResult`]: an upload).
    pub fn file_done(&mut self) {
        self.files_done += 1;
        let planned = self.planned.pop_front().flatten();
        // Bytes counted and never moved are not to come.
        let not_moved = match self.current.take() {
            Some((counted, moved)) => counted.saturating_sub(moved),
            None => planned.unwrap_or(0),
        };
        self.total = self.total.saturating_sub(not_moved).max(self.bytes);
        self.show_run();
    }

    /// Removes the bars (the run is over).
    pub fn clear(&mut self) {
        for bar in [self.file.take(), self.run.take()].into_iter().flatten() {
            bar.finish_and_clear();
        }
    }

    /// The run's line as it stands: `201.9 MiB of 210.0 MiB, 8/310 files`.
    fn show_run(&self) {
        if let Some(run) = &self.run {
            run.set_length(self.total.max(1));
            run.set_position(self.bytes.min(self.total));
            let files = format!("{}/{} files", self.files_done, self.files);
            run.set_message(match self.sized {
                true => format!("{} of {}, {files}", human_size(self.bytes), human_size(self.total)),
                false => files,
            });
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map_or_else(|_| ProgressStyle::default_bar(), |s| s.progress_chars("=> "))
}

/// The time left of a file at `pos` of `len` bytes, `elapsed` after its
/// bytes began to arrive, at the rate of the bytes that arrived in this
/// run: of a file resumed at `kept` bytes, those past them (its bar shows
/// the kept bytes, its rate does not). `None` until a byte arrived.
fn time_left(pos: u64, len: u64, kept: u64, elapsed: Duration) -> Option<Duration> {
    let arrived = pos.saturating_sub(kept);
    if arrived == 0 || elapsed.is_zero() {
        return None;
    }
    let rate = arrived as f64 / elapsed.as_secs_f64();
    Some(Duration::try_from_secs_f64(len.saturating_sub(pos) as f64 / rate).unwrap_or(Duration::MAX))
}

/// The style of a file's bar, the file resumed at `kept` bytes (0: from
/// its start).
fn file_style(kept: u64) -> ProgressStyle {
    style(FILE_TEMPLATE).with_key("left", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        // Not known before a byte of this run arrived: `--` (as curl's
        // `--:--:--`), not `0s`, which would say the file is done.
        let _ = match time_left(state.pos(), state.len().unwrap_or(0), kept, state.elapsed()) {
            Some(left) => write!(w, "{:#}", HumanDuration(left)),
            None => write!(w, "--"),
        };
    })
}

impl Progress for Bar {
    fn planned(&mut self, files: usize) {
        self.files = files as u64;
        let Some(multi) = &self.multi else { return };
        if files > 1 {
            self.run = Some(multi.add(ProgressBar::new(1).with_style(style(RUN_TEMPLATE))));
            self.show_run();
        }
    }

    fn planned_sizes(&mut self, sizes: &[Option<u64>]) {
        self.planned = sizes.iter().copied().collect();
        self.total = sizes.iter().flatten().sum();
        self.sized = true;
        self.show_run();
    }

    fn start(&mut self, name: &str, size: u64) {
        // Counted now: the size it has, whatever the listing said.
        let planned = self.planned.front().copied().flatten().unwrap_or(0);
        self.total = (self.total + size).saturating_sub(planned);
        self.current = Some((size, 0));
        self.sized = true;
        self.show_run();
        let Some(multi) = &self.multi else { return };
        if size < BAR_MIN_SIZE {
            return;
        }
        let bar = ProgressBar::new(size).with_style(file_style(0));
        let bar = match &self.run {
            Some(run) => multi.insert_before(run, bar),
            None => multi.add(bar),
        };
        bar.set_message(quote_name(name).into_owned());
        self.file = Some(bar);
    }

    /// The file's first `bytes` bytes were kept by an earlier run: its bar
    /// shows them (the next [`Progress::advance`] counts them), its time
    /// left counts from now, without them.
    fn resumed(&mut self, bytes: u64) {
        if let Some(bar) = &self.file {
            bar.set_style(file_style(bytes));
            // Its rate begins now: the kept partial was read first.
            bar.reset_elapsed();
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.bytes += bytes;
        if let Some((_, moved)) = &mut self.current {
            *moved += bytes;
        }
        if let Some(bar) = &self.file {
            bar.inc(bytes);
        }
        self.show_run();
    }

    fn finish(&mut self) {
        if let Some(bar) = self.file.take() {
            bar.finish_and_clear();
        }
    }

    fn result(&mut self, _file: &FileResult) {
        self.file_done();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal of a given width that keeps what was written on it.
    #[derive(Debug, Clone)]
    struct Screen {
        cols: u16,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.cols
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.lines.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.write_line(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A file resumed at 40 MiB of 48 MiB that got 1 MiB more in its first
    /// second has 7 s left, not the instant its jump to 41 MiB in a second
    /// would say; none is told before a byte arrived in this run. Before,
    /// the kept bytes counted in the rate as if they had just arrived.
    #[test]
    fn a_resumed_file_is_timed_by_the_bytes_that_arrived_in_this_run() {
        const MIB: u64 = 1 << 20;
        let second = Duration::from_secs(1);
        assert_eq!(time_left(41 * MIB, 48 * MIB, 40 * MIB, second), Some(Duration::from_secs(7)));
        assert_eq!(time_left(40 * MIB, 48 * MIB, 40 * MIB, second), None, "nothing arrived yet");
        assert_eq!(time_left(MIB, 48 * MIB, 0, second), Some(Duration::from_secs(47)), "from the start");
        assert_eq!(time_left(MIB, 48 * MIB, 0, Duration::ZERO), None);
        assert_eq!(time_left(1, u64::MAX, 0, Duration::from_secs(1000)), Some(Duration::MAX), "no overflow");
    }

    #[test]
    fn a_resumed_files_bar_starts_at_the_kept_bytes() {
        let screen = Screen { cols: 100, lines: Arc::default() };
        let mut bar = Bar::drawn_on(Some(ProgressDrawTarget::term_like(Box::new(screen.clone()))));
        bar.planned(1);
        bar.start("big.bin", 48 << 20);
        bar.resumed(40 << 20);
        bar.advance(40 << 20);
        let file = bar.file.as_ref().expect("a file of 1 MiB or more has a bar");
        file.tick();
        assert_eq!(file.position(), 40 << 20);
        let lines = screen.lines.lock().unwrap().clone();
        // No time left is known before a byte of this run arrived: not 0s.
        assert!(lines.iter().any(|l| l.contains("40.00 MiB/48.00 MiB --")), "{lines:?}");
        bar.clear();
    }

    /// Before the run's sizes are told, its line shows the files only: it
    /// showed `0 B of 0 B, 0/3 files` for an instant.
    #[test]
    fn the_run_s_line_shows_no_bytes_before_their_total_is_known() {
        let screen = Screen { cols: 100, lines: Arc::default() };
        let mut bar = Bar::drawn_on(Some(ProgressDrawTarget::term_like(Box::new(screen.clone()))));
        bar.planned(3);
        let run = bar.run.clone().expect("a run of three files has a line");
        run.tick();
        bar.planned_sizes(&[Some(1 << 20), Some(2 << 20), None]);
        run.tick();
        let lines = screen.lines.lock().unwrap().clone();
        assert!(!lines.iter().any(|l| l.contains("0 B of 0 B")), "{lines:?}");
        assert!(lines.iter().any(|l| l.ends_with("] 0/3 files")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("0 B of 3.0 MiB, 0/3 files")), "{lines:?}");
        bar.clear();
    }

    #[test]
    fn both_bars_fit_a_narrow_terminal() {
        for cols in [50, 80, 200] {
            let screen = Screen { cols, lines: Arc::default() };
            let mut bar = Bar::drawn_on(Some(ProgressDrawTarget::term_like(Box::new(screen.clone()))));
            bar.planned(100_000);
            bar.planned_sizes(&vec![Some(999 << 30); 100_000]);
            bar.start("a-rather-long-directory/and-a-long-file-name.iso", 999 << 30);
            bar.advance(998 << 30);
            for b in [&bar.file, &bar.run].into_iter().flatten() {
                b.tick();
            }
            let lines = screen.lines.lock().unwrap().clone();
            assert!(lines.iter().any(|l| l.contains("998.0 GiB of 95.3 PiB, 0/100000 files")), "{lines:?}");
            assert!(lines.iter().any(|l| l.contains("a-rather-lon [")), "{lines:?}");
            for line in lines.iter().flat_map(|l| l.lines()) {
                let width = line.chars().count();
                assert!(width <= usize::from(cols), "{width} columns of {cols}: {line:?}");
                assert!(line.contains(" [") || line.starts_with('['), "a bar was drawn: {line:?}");
            }
            bar.clear();
        }
    }
}
