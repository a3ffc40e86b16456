//! The time galley stamps its records with (the audit log, API tokens): the system clock, or the
//! fixed time `GALLEY_TEST_NOW` gives (tests only); RFC 3339 UTC text and short durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::env_vars::GALLEY_TEST_NOW;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    fixed: Option<u64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock stopped at `secs` since the epoch.
    pub fn fixed(secs: u64) -> Clock {
        Clock { fixed: Some(secs) }
    }

    /// `GALLEY_TEST_NOW` (seconds since the epoch, or an RFC 3339 UTC time) when set, else the
    /// system clock. A value that is neither is an error naming the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Clock, String> {
        match get(GALLEY_TEST_NOW) {
            None => Ok(Clock::system()),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .or_else(|| parse_rfc3339(v.trim()))
                .map(Clock::fixed)
                .ok_or_else(|| format!("{GALLEY_TEST_NOW}={v:?} is neither seconds since the epoch nor an RFC 3339 UTC time")),
        }
    }

    /// Now, as a [`Time`].
    pub fn time(&self) -> Time {
        Time(self.now())
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> u64 {
        self.fixed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

/// A moment to the second, written in files as RFC 3339 UTC text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.as_secs()))
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text).map(Time).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)")))
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (days to civil date after Howard Hinnant).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds: the form [`rfc3339`] writes) as seconds since
/// the epoch; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Civil date to days (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let secs = u64::try_from(secs).ok()?;
    (rfc3339(secs) == text).then_some(secs)
}

/// A short duration: a whole number and a unit, `s`, `m`, `h` or `d` (`90s`, `15m`, `12h`, `30d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("`{text}` is not a duration: write a whole number and a unit, s, m, h or d (`90s`, `15m`, `12h`, `30d`)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).map(Duration::from_secs).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_refuses_other_forms() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        for bad in ["2023-11-14 22:13:20Z", "2023-02-30T00:00:00Z", "2023-11-14T22:13:20+01:00", "x"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "10", "d", "1w", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_clock_reads_seconds_or_rfc3339() {
        let get = |v: &'static str| move |_: &str| Some(v.to_owned());
        assert_eq!(Clock::from_env(get("1700000000")).unwrap().now(), 1_700_000_000);
        assert_eq!(Clock::from_env(get("2023-11-14T22:13:20Z")).unwrap().now(), 1_700_000_000);
        assert!(Clock::from_env(get("yesterday")).unwrap_err().contains("GALLEY_TEST_NOW"));
    }
}
