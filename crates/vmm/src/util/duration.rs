//! Durations as rvmm's options spell them: a number with a unit (`500ms`, `30s`, `5m`,
//! `1h`; `us` and `ns` too), or a bare number of seconds (`1`, `0.5`), as `top -d` and
//! systemd's time spans read. Every error names the option, the value and the rule.

use std::time::Duration;

use thiserror::Error;

/// A duration option that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{option}: \"{value}\" is not a duration: {rule}")]
pub struct DurationError {
    pub option: String,
    pub value: String,
    pub rule: &'static str,
}

/// The longest duration accepted (a week): beyond it is surely a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

const UNITS: [(&str, f64); 6] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses `value` for `option` (the option's name, used in the message).
pub fn parse_duration(option: &str, value: &str) -> Result<Duration, DurationError> {
    let err = |rule| DurationError {
        option: option.to_string(),
        value: value.to_string(),
        rule,
    };
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(err(
            "write a number with an optional unit (ns, us, ms, s, m, h), e.g. 500ms or 30s",
        ));
    }
    let n: f64 = number.parse().map_err(|_| {
        err("write a number with an optional unit (ns, us, ms, s, m, h), e.g. 500ms or 30s")
    })?;
    let scale = if unit.is_empty() {
        1.0
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|&(_, s)| s)
            .ok_or_else(|| err("the unit must be one of ns, us, ms, s, m, h"))?
    };
    let seconds = n * scale;
    if seconds <= 0.0 {
        return Err(err("it must be greater than zero"));
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(err("it must be at most a week (168h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        let p = |v| parse_duration("--window", v).unwrap();
        assert_eq!(p("30s"), Duration::from_secs(30));
        assert_eq!(p("500ms"), Duration::from_millis(500));
        assert_eq!(p("5m"), Duration::from_secs(300));
        assert_eq!(p("1h"), Duration::from_secs(3600));
        assert_eq!(p("250us"), Duration::from_micros(250));
        assert_eq!(p("2"), Duration::from_secs(2));
        assert_eq!(p("0.5"), Duration::from_millis(500));
    }

    #[test]
    fn errors_name_option_value_and_rule() {
        let e = |v| parse_duration("--interval", v).unwrap_err().to_string();
        assert_eq!(
            e("0s"),
            "--interval: \"0s\" is not a duration: it must be greater than zero"
        );
        assert_eq!(
            e("5 parsecs"),
            "--interval: \"5 parsecs\" is not a duration: the unit must be one of ns, us, ms, s, m, h"
        );
        assert!(e("fast").contains("write a number"));
        assert!(e("1.2.3s").contains("write a number"));
        assert!(e("-1s").contains("write a number"));
        assert!(e("200h").contains("at most a week"));
    }
}
