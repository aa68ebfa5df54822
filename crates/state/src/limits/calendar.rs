//! Proleptic Gregorian dates in UTC, for budget periods. Two small conversions (Howard
//! Hinnant's `days_from_civil` / `civil_from_days`) instead of a date library: budgets need
//! nothing else, and integer day numbers cannot disagree between replicas.

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Date {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
}

impl Date {
    /// The date of day number `days` (0 = 1970-01-01).
    pub(crate) fn from_days(days: i64) -> Date {
        // Shift the epoch to 0000-03-01 so that leap days end each 400-year era's years.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097; // day of era, [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1
        let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Date {
            year: yoe + era * 400 + i64::from(month <= 2),
            // Both are small by construction (1..=31, 1..=12).
            month: month as u32,
            day: day as u32,
        }
    }

    /// The day number of this date (0 = 1970-01-01).
    pub(crate) fn days(self) -> i64 {
        let year = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let mp = (i64::from(self.month) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The first day of the month after this date's.
    pub(crate) fn next_month(self) -> Date {
        if self.month == 12 {
            Date {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        } else {
            Date {
                year: self.year,
                month: self.month + 1,
                day: 1,
            }
        }
    }
}
