//! The pure algorithm (`gcra`) against an independent model, over random limits and random
//! sequences of reservations and settlements (fixed seeds, so failures reproduce).
//!
//! The model counts tokens × period_µs in i128 (no gcd, no `used`, no scale beyond the tick) and
//! never computes a wait: `retry_after` and `reset_after` are checked by probing the model at
//! that instant and one microsecond before.

use std::time::Duration;

use sluice_state::limits::gcra::{
    self, Level, Meter, Scale, DEBT_PERIODS, MAX_CAPACITY, MAX_PERIOD,
};
use sluice_state::limits::Limit;

use crate::support::{limit, per_day, per_hour, per_minute, Rng, TestResult};

/// One limit's bucket in the model: `avail` tokens × period_µs, as of tick `at`.
#[derive(Clone, Debug)]
struct Model {
    amount: i128,
    period_us: i128,
    tick_us: u64,
    avail: i128,
    at: u64,
}

impl Model {
    fn new(limit: Limit, tick_us: u64, now_us: u64) -> Self {
        let amount = i128::from(limit.amount);
        let period_us = i128::try_from(limit.period.as_micros()).unwrap();
        Model {
            amount,
            period_us,
            tick_us,
            avail: amount * period_us,
            at: now_us / tick_us,
        }
    }

    fn full(&self) -> i128 {
        self.amount * self.period_us
    }

    /// Refills arrive whole ticks at a time: `tick_us × amount / period` tokens each.
    fn advance(&mut self, now_us: u64) {
        let tick = now_us / self.tick_us;
        if tick > self.at {
            let refill = i128::from(tick - self.at) * i128::from(self.tick_us) * self.amount;
            self.avail = (self.avail + refill).min(self.full());
            self.at = tick;
        }
    }

    fn holds(&self, cost: u64) -> bool {
        self.avail >= i128::from(cost) * self.period_us
    }

    /// Put `tokens` back (negative: take them), within full and the deepest debt.
    fn add(&mut self, tokens: i128) {
        let floor = -i128::from(DEBT_PERIODS) * self.full();
        self.avail = (self.avail + tokens * self.period_us).clamp(floor, self.full());
    }

    fn remaining(&self) -> u64 {
        u64::try_from((self.avail / self.period_us).max(0)).unwrap()
    }

    fn at_time(&self, now_us: u64) -> Model {
        let mut later = self.clone();
        later.advance(now_us);
        later
    }
}

/// The implementation driven as a store would: refill, decide, keep the levels.
struct Subject {
    meters: Vec<Meter>,
    levels: Vec<Level>,
}

impl Subject {
    fn refilled(&mut self, now_us: u64) -> Vec<u64> {
        for (m, level) in self.meters.iter().zip(self.levels.iter_mut()) {
            *level = gcra::refill(&m.scale, Some(*level), m.scale.tick(now_us));
        }
        self.levels.iter().map(|l| l.used).collect()
    }

    fn keep(&mut self, used: &[u64]) {
        for (level, &u) in self.levels.iter_mut().zip(used) {
            level.used = u;
        }
    }
}

const US: Duration = Duration::from_micros(1);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap()
}

/// A random valid limit: amounts and periods from tiny to the maxima, round and not.
fn random_limit(rng: &mut Rng) -> Limit {
    let amount = match rng.below(4) {
        0 => 1 + rng.below(20),
        1 => 1 + rng.below(1_000_000),
        2 => *rng.pick(&[100, 20_000, 2_000_000, 1_000_000_000, 1_999_993, 7_919]),
        _ => 1 + rng.below(MAX_CAPACITY),
    };
    let period_us = match rng.below(3) {
        0 => 1 + rng.below(10_000),
        1 => *rng.pick(&[1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000]),
        _ => 1 + rng.below(micros(MAX_PERIOD)),
    };
    limit(amount, Duration::from_micros(period_us))
}

#[test]
fn scales_are_exact_bounded_and_as_fine_as_possible() -> TestResult {
    let mut rng = Rng::new(0x5ca1e);
    for _ in 0..20_000 {
        let l = random_limit(&mut rng);
        let s = Scale::new(&l)?;
        let (amount, period_us) = (u128::from(l.amount), l.period.as_micros());
        let tick = u128::from(s.tick_us);
        // The rate in units is exactly amount/period: nothing rounds.
        assert_eq!(
            u128::from(s.per_tick) * period_us,
            amount * tick * u128::from(s.per_token),
            "{l} {s:?}"
        );
        assert_eq!(
            u128::from(s.capacity),
            amount * u128::from(s.per_token),
            "{l}"
        );
        assert!(s.capacity <= MAX_CAPACITY, "{l} {s:?}");
        assert!(tick <= period_us, "{l} {s:?}");
        let power_of_ten = std::iter::successors(Some(1u128), |t| Some(t * 10))
            .take_while(|&t| t <= tick)
            .last();
        assert!(power_of_ten == Some(tick) || tick == period_us, "{l} {s:?}");
        // No finer tick would fit: the candidate below it would exceed the capacity bound.
        if tick > 1 {
            let finer = if power_of_ten == Some(tick) {
                tick / 10
            } else {
                std::iter::successors(Some(1u128), |t| Some(t * 10))
                    .take_while(|&t| t < period_us)
                    .last()
                    .unwrap()
            };
            let common = gcd(amount * finer, period_us);
            assert!(
                amount * (period_us / common) > u128::from(MAX_CAPACITY),
                "{l} {s:?}"
            );
        }
    }
    Ok(())
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[test]
fn common_limits_count_in_microseconds() -> TestResult {
    for l in [
        per_minute(20_000),
        per_day(2_000_000),
        per_day(1_000_000_000),
    ] {
        assert_eq!(Scale::new(&l)?.tick_us, 1, "{l}");
    }
    // Whatever the amount, up to the documented bounds.
    for amount in 1..=3_200 {
        assert_eq!(Scale::new(&per_day(amount))?.tick_us, 1, "{amount}/day");
    }
    for amount in (1..=78_000).step_by(7) {
        assert_eq!(Scale::new(&per_hour(amount))?.tick_us, 1, "{amount}/hour");
    }
    let mut rng = Rng::new(7);
    for _ in 0..10_000 {
        let amount = 1 + rng.below(4_600_000);
        assert_eq!(
            Scale::new(&per_minute(amount))?.tick_us,
            1,
            "{amount}/minute"
        );
    }
    // A prime amount per day needs coarser ticks.
    assert_eq!(Scale::new(&per_day(1_999_993))?.tick_us, 1000);
    Ok(())
}

#[test]
fn random_sequences_match_the_model() -> TestResult {
    let mut rng = Rng::new(0x6c1a_2026);
    for sequence in 0..400 {
        let mut limits: Vec<Limit> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let l = random_limit(&mut rng);
            if !limits.contains(&l) {
                limits.push(l);
            }
        }
        let meters = gcra::meters(&limits)?;
        let start_us = 1_795_305_600_000_000 + rng.below(1_000_000_000);
        let mut now_us = start_us;
        let mut subject = Subject {
            levels: meters
                .iter()
                .map(|m| gcra::refill(&m.scale, None, m.scale.tick(now_us)))
                .collect(),
            meters: meters.to_vec(),
        };
        let mut models: Vec<Model> = subject
            .meters
            .iter()
            .map(|m| Model::new(m.limit, m.scale.tick_us, now_us))
            .collect();
        let smallest = limits.iter().map(|l| l.amount).min().unwrap_or(1);
        let shortest = limits.iter().map(|l| micros(l.period)).min().unwrap_or(1);

        for step in 0..150 {
            let context = format!(
                "sequence {sequence} step {step} at +{}µs, {limits:?}",
                now_us - start_us
            );
            now_us += match rng.below(4) {
                0 => 0,
                1 => rng.below(shortest / 10 + 2),
                2 => rng.below(shortest + 2),
                _ => rng.below(3 * shortest + 2),
            };
            let used = subject.refilled(now_us);
            for model in &mut models {
                model.advance(now_us);
            }
            if rng.below(3) == 0 {
                let bound = i64::try_from(2 * smallest).unwrap_or(i64::MAX);
                let delta = match rng.below(20) {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => rng.range(-bound, bound),
                };
                let mut used = used;
                gcra::settle(&subject.meters, &mut used, delta);
                subject.keep(&used);
                for model in &mut models {
                    // A positive delta is usage beyond the reservation: a charge.
                    model.add(-i128::from(delta));
                }
                check_states(
                    &gcra::states(&subject.meters, &used, now_us),
                    &models,
                    now_us,
                    &context,
                );
            } else {
                let cost = match rng.below(10) {
                    0 => smallest + 1 + rng.below(smallest),
                    1 => 0,
                    2..=4 => rng.below(smallest + 1),
                    _ => rng.below(smallest / 4 + 2).min(smallest),
                };
                let never = gcra::never_fits(&subject.meters, cost);
                assert_eq!(never, cost > smallest, "{context}");
                let mut used = used;
                let decision = if never {
                    gcra::never(&subject.meters, &used, now_us)
                } else {
                    let admitted = gcra::admit(&subject.meters, &mut used, cost);
                    subject.keep(&used);
                    gcra::decision(&subject.meters, &used, cost, admitted, now_us)
                };
                let fits = models.iter().all(|m| m.holds(cost));
                assert_eq!(decision.admitted, fits && !never, "{context} cost {cost}");
                assert_eq!(decision.never, never, "{context}");
                if decision.admitted {
                    for model in &mut models {
                        model.add(-i128::from(cost));
                    }
                    assert_eq!(decision.retry_after, None, "{context}");
                } else if never {
                    assert_eq!(decision.retry_after, None, "{context}");
                } else {
                    let wait = decision.retry_after.unwrap();
                    let then = now_us + micros(wait);
                    assert!(wait > Duration::ZERO, "{context}");
                    assert!(
                        models.iter().all(|m| m.at_time(then).holds(cost)),
                        "{context}: {wait:?}"
                    );
                    assert!(
                        !models.iter().all(|m| m.at_time(then - 1).holds(cost)),
                        "{context}: {wait:?} is longer than needed"
                    );
                }
                check_states(&decision.states, &models, now_us, &context);
            }
        }
    }
    Ok(())
}

/// Remaining tokens as the model counts them, and `reset_after` probed: full then, not 1 µs
/// before.
fn check_states(
    states: &[sluice_state::limits::LimitState],
    models: &[Model],
    now_us: u64,
    context: &str,
) {
    assert_eq!(states.len(), models.len(), "{context}");
    for (state, model) in states.iter().zip(models) {
        assert_eq!(state.remaining, model.remaining(), "{context}: {state:?}");
        let full_at = now_us + micros(state.reset_after);
        assert_eq!(
            model.at_time(full_at).avail,
            model.full(),
            "{context}: {state:?}"
        );
        if state.reset_after > Duration::ZERO {
            let before = model.at_time(full_at - micros(US));
            assert!(
                before.avail < model.full(),
                "{context}: {state:?} is later than full"
            );
        }
    }
}
