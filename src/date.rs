//! Time stamps in the forms mail software prints: RFC 5322 `Date:` values
//! in sendmail's spelling, `ctime(3)` for `mailq` and mbox `From ` lines,
//! and sendmail's `delay=` durations.
//!
//! Local time comes from the C library (`localtime_r`), so the system zone
//! (`/etc/localtime`) is used, as sendmail does.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Broken-down time plus the zone it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tm {
    pub year: i32,
    /// 0–11
    pub month: u32,
    /// 1–31
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// Seconds east of UTC.
    pub gmtoff: i64,
    /// Zone abbreviation ("UTC", "CET", ...).
    pub zone: String,
}

fn from_libc(tm: &libc::tm) -> Tm {
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated static string owned by
        // the C library's time zone data.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Tm {
        year: tm.tm_year + 1900,
        month: tm.tm_mon as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        gmtoff: tm.tm_gmtoff,
        zone,
    }
}

/// `t` in the system's local time zone.  In a child forked from a
/// threaded process, UTC instead (see `utc_by_arithmetic`).
pub fn local(t: i64) -> Tm {
    if crate::privs::in_forked_child() {
        return utc_by_arithmetic(t);
    }
    let tt = t as libc::time_t;
    // SAFETY: an all-zero tm is a valid value; localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    unsafe { libc::localtime_r(&tt, &mut tm) };
    from_libc(&tm)
}

/// `t` in UTC.
pub fn utc(t: i64) -> Tm {
    if crate::privs::in_forked_child() {
        return utc_by_arithmetic(t);
    }
    let tt = t as libc::time_t;
    // SAFETY: as in `local`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    unsafe { libc::gmtime_r(&tt, &mut tm) };
    from_libc(&tm)
}

/// `t` in UTC without the C library.  glibc's `localtime_r` and
/// `gmtime_r` take the time-zone lock; in a child forked from a threaded
/// process another thread may have held it at the fork, and the child
/// would wait forever.  Such children should not need the time (the
/// delivery child gets its `From ` line made before the fork); if one
/// does, it gets UTC rather than a hang.  Civil date from a day count,
/// proleptic Gregorian calendar.
fn utc_by_arithmetic(t: i64) -> Tm {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so that February's leap day comes last.
    let m = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * m + 2) / 5 + 1;
    let month = if m < 10 { m + 2 } else { m - 10 };
    let year = year_of_era + era * 400 + i64::from(month <= 1);
    Tm {
        year: year as i32,
        month: month as u32,
        day: day as u32,
        hour: (secs / 3600) as u32,
        min: (secs % 3600 / 60) as u32,
        sec: (secs % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u32,
        gmtoff: 0,
        zone: "GMT".to_string(),
    }
}

/// An RFC 5322 date the way sendmail's `arpadate()` writes it:
/// `Sat, 21 Nov 2026 05:20:53 GMT` when the zone is UTC, otherwise
/// `Sat, 21 Nov 2026 06:20:53 +0100 (CET)`.  The day is not zero-padded.
pub fn rfc5322(t: i64) -> String {
    let tm = local(t);
    let mut s = format!(
        "{}, {} {} {} {:02}:{:02}:{:02} ",
        DAYS[tm.weekday as usize % 7],
        tm.day,
        MONTHS[tm.month as usize % 12],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec
    );
    if tm.gmtoff == 0 {
        s.push_str("GMT");
    } else {
        let sign = if tm.gmtoff < 0 { '-' } else { '+' };
        let off = tm.gmtoff.abs() / 60;
        s.push_str(&format!("{sign}{:02}{:02}", off / 60, off % 60));
        if !tm.zone.is_empty() {
            s.push_str(&format!(" ({})", tm.zone));
        }
    }
    s
}

/// `ctime(3)` without the newline: `Sat Nov 21 05:26:00 2026`, day of month
/// padded with a space.  Used for mbox `From ` lines and `mailq`.
pub fn ctime(t: i64) -> String {
    let tm = local(t);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[tm.weekday as usize % 7],
        MONTHS[tm.month as usize % 12],
        tm.day,
        tm.hour,
        tm.min,
        tm.sec,
        tm.year
    )
}

/// sendmail's `$t` macro: `YYYYMMDDhhmm`, used in generated Message-Ids.
pub fn message_id_stamp(t: i64) -> String {
    let tm = utc(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}",
        tm.year,
        tm.month + 1,
        tm.day,
        tm.hour,
        tm.min
    )
}

/// A duration as sendmail logs it: `HH:MM:SS`, or `D+HH:MM:SS` from one day.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, rest) = (s / 86400, s % 86400);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if d > 0 { format!("{d}+{hms}") } else { hms }
}

/// Parse the date of a Unix `From ` line (`Thu Nov 20 10:00:00 2025`,
/// possibly with a zone word before the year) as local time.
pub fn parse_ctime(s: &str) -> Option<i64> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.len() < 5 {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(words[1]))?;
    let day: i32 = words[2].parse().ok()?;
    let mut hms = words[3].split(':');
    let hour: i32 = hms.next()?.parse().ok()?;
    let min: i32 = hms.next()?.parse().ok()?;
    let sec: i32 = hms.next().unwrap_or("0").parse().ok()?;
    let mut year: i32 = words.last()?.parse().ok()?;
    if year < 100 {
        year += if year >= 70 { 1900 } else { 2000 };
    }
    if !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // SAFETY: an all-zero tm is valid; mktime normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month as i32;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    // SAFETY: tm is a valid, initialised struct.
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 { None } else { Some(t as i64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_by_arithmetic_agrees_with_the_c_library() {
        // Every day boundary from 1900 to 2200 around leap years and
        // centuries, plus odd seconds.
        let mut t = -2_208_988_800i64; // 1900-01-01
        while t < 7_258_118_400 {
            for s in [t, t + 1, t + 86_399, t + 43_210] {
                assert_eq!(utc_by_arithmetic(s), utc(s), "t = {s}");
            }
            t += 86_400 * 7 + 3_600 * 5 + 17;
        }
        for s in [0, 951_782_400, 951_868_800, 4_107_542_400, 1_795_292_684] {
            assert_eq!(utc_by_arithmetic(s), utc(s), "t = {s}");
        }
    }

    #[test]
    fn utc_fields() {
        // 2026-11-21 05:20:53 UTC
        let tm = utc(1795238453);
        assert_eq!((tm.year, tm.month, tm.day), (2026, 10, 21));
        assert_eq!((tm.hour, tm.min, tm.sec), (5, 20, 53));
        assert_eq!(DAYS[tm.weekday as usize], "Sat");
        assert_eq!(message_id_stamp(1795238453), "202611210520");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "00:00:00");
        assert_eq!(duration(3661), "01:01:01");
        assert_eq!(duration(86400 + 5), "1+00:00:05");
    }

    #[test]
    fn ctime_round_trip() {
        let t = 1795238453;
        assert_eq!(parse_ctime(&ctime(t)), Some(t));
        assert_eq!(ctime(t).len(), 24);
        assert!(parse_ctime("not a date").is_none());
    }
}
