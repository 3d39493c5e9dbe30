//! Learning-rate schedules as HF's `get_scheduler`: linear, cosine, constant, constant with warmup.

use super::config::LrScheduler as ScheduleKind;

/// The learning rate at `step` (0-based, the step about to be taken).
pub fn learning_rate(
    kind: ScheduleKind,
    base: f64,
    step: usize,
    warmup: usize,
    total: usize,
) -> f64 {
    let s = step as f64;
    let warm = warmup as f64;
    if kind != ScheduleKind::Constant && step < warmup {
        return base * s / warm.max(1.0);
    }
    let progress = (s - warm) / ((total as f64 - warm).max(1.0));
    match kind {
        ScheduleKind::Constant | ScheduleKind::ConstantWithWarmup => base,
        ScheduleKind::Linear => base * (1.0 - progress).max(0.0),
        ScheduleKind::Cosine => {
            base * (0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())).max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_hf_formulas() {
        let lr = |k, s| learning_rate(k, 1.0, s, 10, 110);
        assert_eq!(lr(ScheduleKind::Linear, 0), 0.0);
        assert_eq!(lr(ScheduleKind::Linear, 5), 0.5);
        assert_eq!(lr(ScheduleKind::Linear, 10), 1.0);
        assert!((lr(ScheduleKind::Linear, 60) - 0.5).abs() < 1e-12);
        assert_eq!(lr(ScheduleKind::Linear, 110), 0.0);
        assert!((lr(ScheduleKind::Cosine, 60) - 0.5).abs() < 1e-12);
        assert_eq!(lr(ScheduleKind::Constant, 0), 1.0);
        assert_eq!(lr(ScheduleKind::ConstantWithWarmup, 5), 0.5);
        assert_eq!(lr(ScheduleKind::ConstantWithWarmup, 100), 1.0);
    }
}
