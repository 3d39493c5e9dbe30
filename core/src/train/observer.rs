//! What the trainer reports while it runs, to whoever runs it.

/// Messages and progress of a run (the CLI draws a progress bar from them), and the way to stop
/// it.
pub trait Observer {
    fn message(&mut self, text: &str);
    fn start(&mut self, total_steps: usize, first_step: usize);
    fn step(&mut self, step: usize, loss: f64, lr: f64, examples_per_s: f64);
    /// Checked after every step: true stops training after saving a checkpoint (Ctrl-C).
    fn interrupted(&self) -> bool {
        false
    }
}
