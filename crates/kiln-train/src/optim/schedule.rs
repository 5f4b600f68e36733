//! The learning-rate schedule: linear warmup, then cosine decay to a floor, as nanoGPT's
//! `get_lr` (so its presets reproduce): `lr·(it+1)/(warmup+1)` while warming up, the floor
//! after `decay_steps`, and `min + ½(1 + cos(π·r))·(max − min)` in between.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    pub max_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub decay_steps: u64,
}

impl CosineSchedule {
    /// The learning rate for (0-based) step `it`.
    pub fn lr(&self, it: u64) -> f64 {
        if it < self.warmup_steps {
            return self.max_lr * (it + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if it > self.decay_steps || self.decay_steps <= self.warmup_steps {
            return self.min_lr;
        }
        let r = (it - self.warmup_steps) as f64 / (self.decay_steps - self.warmup_steps) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * r).cos());
        self.min_lr + coeff * (self.max_lr - self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_by_cosine_to_the_floor() {
        let s = CosineSchedule {
            max_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            decay_steps: 2000,
        };
        assert!((s.lr(0) - 1e-3 / 101.0).abs() < 1e-15);
        assert!((s.lr(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
        assert!((s.lr(100) - 1e-3).abs() < 1e-15);
        // Halfway through the decay the cosine is at zero: the midpoint of max and min.
        assert!((s.lr(1050) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr(2000) - 1e-4).abs() < 1e-15);
        assert_eq!(s.lr(5000), 1e-4);
        let decay: Vec<f64> = (100..=2000).map(|i| s.lr(i)).collect();
        assert!(
            decay.windows(2).all(|w| w[1] <= w[0]),
            "decay must not rise"
        );
    }
}
