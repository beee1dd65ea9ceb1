//! CronJob schedules as Kubernetes reads them: robfig/cron v3's `ParseStandard` (five
//! fields, names, ranges, steps, `?`, the `@hourly`-style descriptors and `@every`), its
//! error messages word for word (validation shows them), and its `Next` over a time zone,
//! with Go's rules for local times a daylight-saving change skips or repeats. No crate is used
//! because both halves must be robfig's: the messages for validation, and the next times —
//! its day-of-month/day-of-week rule and its DST corrections — for the controller.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Set when a field was given as `*` or `?` (robfig's `starBit`): with it, day of month and
/// day of week must both match; without, either does.
const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

/// A field without names.
const fn numbers(min: u32, max: u32) -> Bounds {
    Bounds {
        min,
        max,
        names: &[],
    }
}

const MINUTES: Bounds = numbers(0, 59);
const HOURS: Bounds = numbers(0, 23);
const DAYS_OF_MONTH: Bounds = numbers(1, 31);
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// A parsed schedule: the fields' bit sets (the second is always 0), or `@every`'s delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    Fields {
        minute: u64,
        hour: u64,
        day_of_month: u64,
        month: u64,
        day_of_week: u64,
    },
    /// `@every D`: D after the last time, whole seconds, at least one.
    Every { seconds: i64 },
}

/// A schedule and the zone a `TZ=`/`CRON_TZ=` prefix named (Kubernetes writes its
/// `timeZone` so; validation refuses it in `schedule` itself).
#[derive(Clone, Debug)]
pub struct Parsed {
    pub schedule: Schedule,
    pub zone: Option<TimeZone>,
}

/// robfig/cron v3's `ParseStandard`, with its messages.
pub fn parse_standard(spec: &str) -> Result<Parsed, String> {
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        // Go slices up to the first space, which must come after the `=`.
        let space = spec.find(' ').filter(|&i| i > eq);
        let Some(space) = space else {
            return Err(format!(
                "provided bad location {}: unknown time zone",
                &spec[eq + 1..]
            ));
        };
        let name = &spec[eq + 1..space];
        zone = Some(load_location(name).map_err(|e| format!("provided bad location {name}: {e}"))?);
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return Ok(Parsed {
            schedule: descriptor(spec)?,
            zone,
        });
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(Parsed {
        schedule: Schedule::Fields {
            minute: field(fields[0], &MINUTES)?,
            hour: field(fields[1], &HOURS)?,
            day_of_month: field(fields[2], &DAYS_OF_MONTH)?,
            month: field(fields[3], &MONTHS)?,
            day_of_week: field(fields[4], &DAYS_OF_WEEK)?,
        },
        zone,
    })
}

/// Go's `time.LoadLocation`: `""` and `UTC` are UTC, `Local` the machine's zone, others IANA
/// names from the system's database or the one the binary carries.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => jiff::tz::db()
            .get(name)
            .map_err(|_| format!("unknown time zone {name}")),
    }
}

fn descriptor(spec: &str) -> Result<Schedule, String> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    let one = |b: &Bounds| 1u64 << b.min;
    let fields = |hour, day_of_month, month, day_of_week| Schedule::Fields {
        minute: one(&MINUTES),
        hour,
        day_of_month,
        month,
        day_of_week,
    };
    match spec {
        "@yearly" | "@annually" => Ok(fields(
            one(&HOURS),
            one(&DAYS_OF_MONTH),
            one(&MONTHS),
            all(&DAYS_OF_WEEK),
        )),
        "@monthly" => Ok(fields(
            one(&HOURS),
            one(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        )),
        "@weekly" => Ok(fields(
            one(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            one(&DAYS_OF_WEEK),
        )),
        "@daily" | "@midnight" => Ok(fields(
            one(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        )),
        "@hourly" => Ok(fields(
            all(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        )),
        _ => match spec.strip_prefix("@every ") {
            Some(duration) => {
                let nanos = go_duration(duration)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // robfig's `Every`: at least a second, whole seconds.
                Ok(Schedule::Every {
                    seconds: (nanos / 1_000_000_000).max(1) as i64,
                })
            }
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
    }
}

/// A comma-separated list of ranges.
fn field(text: &str, bounds: &Bounds) -> Result<u64, String> {
    let mut all = 0;
    for range in text.split(',').filter(|r| !r.is_empty()) {
        all |= self::range(range, bounds)?;
    }
    Ok(all)
}

/// `number | number "-" number [ "/" number ]`, `*` or `?`, names.
fn range(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (start, end, extra) = (bounds.min as i64, bounds.max as i64, STAR);
    } else {
        start = int_or_name(low_and_high[0], bounds)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = non_negative_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = bounds.max as i64;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min as i64 {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max as i64 {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start as u32, end as u32, step as u32) | extra)
}

fn int_or_name(expr: &str, bounds: &Bounds) -> Result<i64, String> {
    let lower = expr.to_lowercase();
    match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, value)) => Ok(*value as i64),
        None => non_negative_int(expr),
    }
}

/// Go's `strconv.Atoi`, then robfig's refusal of negatives; beyond 64 bits as Go says it.
fn non_negative_int(expr: &str) -> Result<i64, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    let syntax = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let number = match expr.parse::<i64>() {
        Ok(n) => n,
        Err(_) if syntax => {
            return Err(format!(
                "failed to parse int from {expr}: strconv.Atoi: parsing {}: value out of range",
                go_quote(expr)
            ))
        }
        Err(_) => {
            return Err(format!(
                "failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax",
                go_quote(expr)
            ))
        }
    };
    if number < 0 {
        return Err(format!("negative number ({number}) not allowed: {expr}"));
    }
    Ok(number)
}

fn go_quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The bits from `min` to `max`, every `step`.
fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max.min(63))
        .step_by(step.max(1) as usize)
        .fold(0, |bits, i| bits | 1 << i)
}

/// Go's `time.ParseDuration`, in nanoseconds (only what a schedule needs: no overflow past
/// Go's limit of about 290 years is accepted either).
fn go_duration(text: &str) -> Result<u128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(text));
    let mut rest = text;
    let negative = rest.starts_with('-');
    rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration {}", go_quote(text))),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(other),
                    go_quote(text)
                ))
            }
        };
        total += number.parse::<f64>().map_err(|_| invalid())? * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    // A negative delay is as good as none: robfig's `Every` rounds it up to a second.
    Ok(if negative { 0 } else { total as u128 })
}

impl Schedule {
    /// robfig's `Next`: the first time after `after` (to the second) the schedule fires,
    /// its fields read in `zone`; `None` if none within five years.
    pub fn next(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let (minute, hour, day_of_month, month, day_of_week) = match self {
            Schedule::Every { seconds } => {
                let whole = after.as_second();
                return Timestamp::from_second(whole + seconds).ok();
            }
            Schedule::Fields {
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
            } => (*minute, *hour, *day_of_month, *month, *day_of_week),
        };
        let day_matches = |t: &DateTime| {
            let dom = day_of_month & (1 << t.day()) != 0;
            let dow = day_of_week & (1 << t.weekday().to_sunday_zero_offset()) != 0;
            if day_of_month & STAR != 0 || day_of_week & STAR != 0 {
                dom && dow
            } else {
                dom || dow
            }
        };
        // The upcoming second.
        let mut t = after.as_second() + 1;
        let local = |t: i64| civil(t, zone);
        let mut added = false;
        let year_limit = local(t).year() + 5;
        'wrap: loop {
            if local(t).year() > year_limit {
                return None;
            }
            while month & (1 << local(t).month()) == 0 {
                if !added {
                    added = true;
                    t = start_of(t, Unit::Month, zone);
                }
                t = add_date(t, 1, 0, zone);
                if local(t).month() == 1 {
                    continue 'wrap;
                }
            }
            while !day_matches(&local(t)) {
                if !added {
                    added = true;
                    t = start_of(t, Unit::Day, zone);
                }
                t = add_date(t, 0, 1, zone);
                // Midnight skipped or repeated by a DST change: back to the day's start.
                let hour = local(t).hour() as i64;
                if hour != 0 {
                    if hour > 12 {
                        t += (24 - hour) * 3600;
                    } else {
                        t -= hour * 3600;
                    }
                }
                if local(t).day() == 1 {
                    continue 'wrap;
                }
            }
            while hour & (1 << local(t).hour()) == 0 {
                if !added {
                    added = true;
                    t = start_of(t, Unit::Hour, zone);
                }
                t += 3600;
                if local(t).hour() == 0 {
                    continue 'wrap;
                }
            }
            while minute & (1 << local(t).minute()) == 0 {
                if !added {
                    added = true;
                    t -= t.rem_euclid(60);
                }
                t += 60;
                if local(t).minute() == 0 {
                    continue 'wrap;
                }
            }
            // Seconds: always 0.
            while local(t).second() != 0 {
                if !added {
                    added = true;
                }
                t += 1;
                if local(t).second() == 0 {
                    continue 'wrap;
                }
            }
            return Timestamp::from_second(t).ok();
        }
    }
}

enum Unit {
    Month,
    Day,
    Hour,
}

/// The start of `t`'s month, day or hour in `zone`, through Go's `time.Date`.
fn start_of(t: i64, unit: Unit, zone: &TimeZone) -> i64 {
    let now = civil(t, zone);
    let (day, hour) = match unit {
        Unit::Month => (1, 0),
        Unit::Day => (now.day() as i32, 0),
        Unit::Hour => (now.day() as i32, now.hour() as i32),
    };
    go_date(now.year(), now.month() as i32, day, hour, 0, 0, zone)
}

/// Go's `t.AddDate(0, months, days)` in `zone`.
fn add_date(t: i64, months: i32, days: i32, zone: &TimeZone) -> i64 {
    let now = civil(t, zone);
    go_date(
        now.year(),
        now.month() as i32 + months,
        now.day() as i32 + days,
        now.hour() as i32,
        now.minute() as i32,
        now.second() as i32,
        zone,
    )
}

fn civil(seconds: i64, zone: &TimeZone) -> DateTime {
    let instant = Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH);
    zone.to_datetime(instant)
}

/// Go's `time.Date`: fields out of range carry over (month 13 is next January, day 32 the
/// next month's first), and a local time a DST change skips or repeats gets the offset Go
/// picks: the one in effect at that wall time read as UTC, unless the result falls outside
/// that offset's period, then the offset at the result.
fn go_date(
    year: i16,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    second: i32,
    zone: &TimeZone,
) -> i64 {
    let month0 = month - 1;
    let year = year as i32 + month0.div_euclid(12);
    let month = month0.rem_euclid(12) + 1;
    let first = Date::new(year as i16, month as i8, 1).unwrap_or_default();
    let days = first
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0)
        / 86_400;
    let local = (days + (day as i64 - 1)) * 86_400
        + hour as i64 * 3600
        + minute as i64 * 60
        + second as i64;
    let offset_at = |t: i64| {
        let instant = Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH);
        zone.to_offset(instant).seconds() as i64
    };
    // Within the first offset's period the second lookup gives it again.
    local - offset_at(local - offset_at(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(spec: &str, after: &str, zone: &str) -> String {
        let parsed = parse_standard(spec).unwrap();
        let zone = load_location(zone).unwrap();
        let next = parsed.schedule.next(at(after), &zone).unwrap();
        zone.to_datetime(next).to_string() + &format!(" ({next})")
    }

    #[test]
    fn robfigs_messages_for_what_it_refuses() {
        let error = |spec: &str| parse_standard(spec).unwrap_err();
        assert_eq!(error(""), "empty spec string");
        assert_eq!(
            error("61 * * * *"),
            "end of range (61) above maximum (59): 61"
        );
        assert_eq!(
            error("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            error("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            error("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(error("*/2/3 * * * *"), "too many slashes: */2/3");
        assert_eq!(
            error("x * * * *"),
            r#"failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(
            error("*/-1 * * * *"),
            "negative number (-1) not allowed: -1"
        );
        assert_eq!(
            error("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            error("0 * * * * *"),
            "expected exactly 5 fields, found 6: [0 * * * * *]"
        );
        assert_eq!(error("@often"), "unrecognized descriptor: @often");
        assert_eq!(
            error("@every 1d"),
            r#"failed to parse duration @every 1d: time: unknown unit "d" in duration "1d""#
        );
        assert_eq!(
            error("TZ=Mars/Olympus * * * * *"),
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
        );
        // Syntax other cron crates take and Kubernetes refuses.
        assert!(parse_standard("0 0 L * *").is_err());
        assert!(parse_standard("0 0 * * 1#2").is_err());
        assert!(parse_standard("* * * * 7").is_err(), "Sunday is 0 only");
    }

    #[test]
    fn names_ranges_steps_and_descriptors() {
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T00:07:00Z", "UTC"),
            "2026-01-01T00:15:00 (2026-01-01T00:15:00Z)"
        );
        assert_eq!(
            next("0 9 * * MON-fri", "2026-01-03T12:00:00Z", "UTC"),
            "2026-01-05T09:00:00 (2026-01-05T09:00:00Z)"
        );
        assert_eq!(
            next("0 0 1 jan,JUL ?", "2026-02-01T00:00:00Z", "UTC"),
            "2026-07-01T00:00:00 (2026-07-01T00:00:00Z)"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-01-01T00:06:00Z", "UTC"),
            "2026-01-01T00:25:00 (2026-01-01T00:25:00Z)"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T00:00:00Z", "UTC"),
            "2026-01-01T01:00:00 (2026-01-01T01:00:00Z)"
        );
        assert_eq!(
            next("@weekly", "2026-01-01T00:00:00Z", "UTC"),
            "2026-01-04T00:00:00 (2026-01-04T00:00:00Z)"
        );
        assert_eq!(
            next("@yearly", "2026-01-01T00:00:00Z", "UTC"),
            "2027-01-01T00:00:00 (2027-01-01T00:00:00Z)"
        );
        assert_eq!(
            next("@every 90s", "2026-01-01T00:00:00.5Z", "UTC"),
            "2026-01-01T00:01:30 (2026-01-01T00:01:30Z)"
        );
        // Day of month and day of week both restricted: either matches (Vixie cron).
        assert_eq!(
            next("0 0 13 * 5", "2026-02-01T00:00:00Z", "UTC"),
            "2026-02-06T00:00:00 (2026-02-06T00:00:00Z)"
        );
        // One of them a star: both must match.
        assert_eq!(
            next("0 0 */1 * 5", "2026-02-01T00:00:00Z", "UTC"),
            "2026-02-06T00:00:00 (2026-02-06T00:00:00Z)"
        );
        assert_eq!(
            next("0 0 13 * *", "2026-02-01T00:00:00Z", "UTC"),
            "2026-02-13T00:00:00 (2026-02-13T00:00:00Z)"
        );
        // A day no month has: none within five years.
        let never = parse_standard("0 0 31 2 *").unwrap().schedule;
        assert_eq!(never.next(at("2026-01-01T00:00:00Z"), &TimeZone::UTC), None);
    }

    #[test]
    fn a_time_zone_and_its_daylight_saving_changes() {
        // 05:00 in New York is 10:00 UTC in winter, 09:00 in summer.
        assert_eq!(
            next("0 5 * * *", "2026-01-10T12:00:00Z", "America/New_York"),
            "2026-01-11T05:00:00 (2026-01-11T10:00:00Z)"
        );
        assert_eq!(
            next("0 5 * * *", "2026-07-10T12:00:00Z", "America/New_York"),
            "2026-07-11T05:00:00 (2026-07-11T09:00:00Z)"
        );
        // 2026-03-08 02:30 does not exist in New York: robfig moves on to the next hour
        // that matches, 02:30 the next day.
        assert_eq!(
            next("30 2 * * *", "2026-03-08T05:00:00Z", "America/New_York"),
            "2026-03-09T02:30:00 (2026-03-09T06:30:00Z)"
        );
        // 2026-11-01 01:30 happens twice: the first one fires, and the next day's.
        assert_eq!(
            next("30 1 * * *", "2026-11-01T04:00:00Z", "America/New_York"),
            "2026-11-01T01:30:00 (2026-11-01T05:30:00Z)"
        );
        assert_eq!(
            next("30 1 * * *", "2026-11-01T05:30:00Z", "America/New_York"),
            "2026-11-01T01:30:00 (2026-11-01T06:30:00Z)"
        );
        // Every hour across the spring change: 01:00 EST, then 03:00 EDT.
        assert_eq!(
            next("0 * * * *", "2026-03-08T06:00:00Z", "America/New_York"),
            "2026-03-08T03:00:00 (2026-03-08T07:00:00Z)"
        );
        // A TZ= prefix names the zone, as the controller writes `timeZone`.
        let parsed = parse_standard("TZ=Asia/Tokyo 0 9 * * *").unwrap();
        let zone = parsed.zone.unwrap();
        let next = parsed
            .schedule
            .next(at("2026-01-01T00:00:00Z"), &zone)
            .unwrap();
        assert_eq!(next, at("2026-01-02T00:00:00Z"));
    }
}
