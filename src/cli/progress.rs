//! Progress on stderr: an indicatif spinner only when stderr is a terminal and not `--quiet`
//! (so CI logs and pipes stay clean); plain step lines otherwise unless quiet.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                b.set_style(style);
            }
            b.enable_steady_tick(std::time::Duration::from_millis(100));
            b
        });
        Progress { bar, quiet }
    }

    pub fn step(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// A line that stays (results), printed above the spinner.
    pub fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl mdeploy::pipeline::Observer for Progress {
    fn step(&self, msg: &str) {
        Progress::step(self, msg)
    }
    fn line(&self, msg: &str) {
        Progress::line(self, msg)
    }
    fn warn(&self, msg: &str) {
        Progress::line(self, &format!("warning: {msg}"))
    }
}
