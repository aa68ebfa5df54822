//! Budget windows: UTC days and months, their ids and bounds (instants checked against
//! `calendar.timegm`, not computed with the code under test).

use std::time::Duration;

use sluice_state::limits::{Period, Window};
use sluice_state::StoreError;

use crate::support::{unix, TestResult};

fn window(period: Period, id: &str, start: u64, end: u64) -> Window {
    Window {
        period,
        id: id.to_owned(),
        start: unix(start),
        end: unix(end),
    }
}

#[test]
fn days_run_from_midnight_to_midnight_utc() -> TestResult {
    let nov_30 = window(Period::Day, "2026-11-30", 1_795_996_800, 1_796_083_200);
    // 2026-11-30T00:00:00Z, 12:00:00Z, 23:59:59.999999Z
    for now in [
        unix(1_795_996_800),
        unix(1_796_040_000),
        unix(1_796_083_199) + Duration::from_micros(999_999),
    ] {
        assert_eq!(Period::Day.window(now)?, nov_30, "{now:?}");
    }
    // 2026-12-01T00:00:00Z starts the next day.
    assert_eq!(
        Period::Day.window(unix(1_796_083_200))?,
        window(Period::Day, "2026-12-01", 1_796_083_200, 1_796_169_600)
    );
    Ok(())
}

#[test]
fn months_run_from_the_first_to_the_first() -> TestResult {
    // 2026-11-30T23:59:59Z is still November, 2026-12-01T00:00:00Z December.
    let november = window(Period::Month, "2026-11", 1_793_491_200, 1_796_083_200);
    assert_eq!(Period::Month.window(unix(1_796_083_199))?, november);
    assert_eq!(Period::Month.window(unix(1_793_491_200))?, november);
    assert_eq!(
        Period::Month.window(unix(1_796_083_200))?,
        window(Period::Month, "2026-12", 1_796_083_200, 1_798_761_600)
    );
    // December rolls over into January of the next year.
    assert_eq!(
        Period::Month.window(unix(1_798_761_599))?,
        window(Period::Month, "2026-12", 1_796_083_200, 1_798_761_600)
    );
    assert_eq!(
        Period::Month.window(unix(1_798_761_600))?,
        window(Period::Month, "2027-01", 1_798_761_600, 1_801_440_000)
    );
    Ok(())
}

#[test]
fn leap_years_follow_the_gregorian_rules() -> TestResult {
    // 2028 is a leap year: February has 29 days.
    assert_eq!(
        Period::Month.window(unix(1_835_438_400))?,
        window(Period::Month, "2028-02", 1_832_976_000, 1_835_481_600)
    );
    assert_eq!(
        Period::Day.window(unix(1_835_438_400))?,
        window(Period::Day, "2028-02-29", 1_835_395_200, 1_835_481_600)
    );
    // 2100 is not (divisible by 100, not by 400): 2100-02-28 is followed by 2100-03-01.
    assert_eq!(
        Period::Day.window(unix(4_107_538_800))?,
        window(Period::Day, "2100-02-28", 4_107_456_000, 4_107_542_400)
    );
    assert_eq!(
        Period::Month.window(unix(4_107_538_800))?,
        window(Period::Month, "2100-02", 4_105_123_200, 4_107_542_400)
    );
    // 2000 is (divisible by 400).
    assert_eq!(
        Period::Day.window(unix(951_782_400))?,
        window(Period::Day, "2000-02-29", 951_782_400, 951_868_800)
    );
    // The epoch itself.
    assert_eq!(
        Period::Month.window(unix(0))?,
        window(Period::Month, "1970-01", 0, 2_678_400)
    );
    Ok(())
}

#[test]
fn every_day_until_2250_is_contiguous() -> TestResult {
    // Walk 1970..2250 (instants stop being exact Lua numbers in 2255) a day at a time: every
    // window starts where the previous one ended, and the ids are strictly increasing (so the
    // calendar neither skips nor repeats a day).
    let mut previous = Period::Day.window(unix(0))?;
    let mut months = 1;
    let mut month = Period::Month.window(unix(0))?;
    for day in 1..102_268 {
        let now = unix(day * 86_400 + 43_200);
        let next = Period::Day.window(now)?;
        assert_eq!(next.start, previous.end, "{}", next.id);
        assert!(next.id > previous.id, "{} after {}", next.id, previous.id);
        let next_month = Period::Month.window(now)?;
        if next_month != month {
            assert_eq!(next_month.start, month.end, "{}", next_month.id);
            assert!(next_month.id.starts_with(&next.id[..7]) && next.id.ends_with("-01"));
            months += 1;
            month = next_month;
        }
        previous = next;
    }
    assert_eq!(previous.id, "2249-12-31");
    assert_eq!(months, 280 * 12);
    Ok(())
}

#[test]
fn instants_out_of_range_are_invalid() {
    let before = unix(0) - Duration::from_secs(1);
    assert!(matches!(
        Period::Day.window(before),
        Err(StoreError::Invalid(_))
    ));
    // 2^53 µs after the epoch (year 2255) is no longer exact in Lua.
    let far = unix(0) + Duration::from_micros(1 << 53);
    assert!(matches!(
        Period::Month.window(far),
        Err(StoreError::Invalid(_))
    ));
}
