//! The client's progress bar: on stderr while a file of 1 MiB or more
//! arrives, only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmxfer::programs::quote_name;
use shmxfer::Progress;

/// A progress bar per file, when enabled.
pub struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        Bar { enabled, bar: None }
    }
}

impl Progress for Bar {
    fn start(&mut self, name: &str, size: u64) {
        if !self.enabled || size < 1 << 20 {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(quote_name(name).into_owned());
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
