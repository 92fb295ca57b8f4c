//! Progress bars for the front ends (indicatif); hidden when stderr is not
//! a terminal, so logs and CI output stay clean.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Progress;

/// An indicatif bar showing step/total, loss and learning rate (training
/// only), rate and ETA.
pub struct Bar {
    label: String,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar whose prefix is `label` followed by each phase's name; nothing is
    /// drawn until the first `start`.
    pub fn new(label: impl Into<String>) -> Self {
        Bar {
            label: label.into(),
            bar: None,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, what: &str, total: u64) {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{prefix:>24} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{} {what}", self.label));
        self.bar = Some(bar);
    }

    fn step(&mut self, done: u64, loss: f64, lr: f64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            // Evaluation reports no loss (NaN): its bar shows none.
            if loss.is_nan() {
                b.set_message("");
            } else {
                b.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
