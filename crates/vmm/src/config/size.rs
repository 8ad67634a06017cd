//! Memory sizes as QEMU spells them: a number with an optional K, M, G or T suffix (binary
//! multiples), where a bare number means MiB for `-m` (QEMU's default unit).

use thiserror::Error;

/// Why a size did not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("{option}: '{value}' is not a size (expected a number with an optional K, M, G or T suffix, e.g. 512M or 2G)")]
    Syntax { option: String, value: String },
    #[error("{option}: '{value}' is too large")]
    Overflow { option: String, value: String },
}

/// The unit a bare number is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultUnit {
    Bytes,
    Mebibytes,
}

/// Parses `value` (e.g. `512M`, `2G`, `1.5G`, `128`) into bytes. `option` names the flag in
/// errors.
pub fn parse_size(option: &str, value: &str, unit: DefaultUnit) -> Result<u64, SizeError> {
    let syntax = || SizeError::Syntax {
        option: option.to_string(),
        value: value.to_string(),
    };
    let v = value.trim();
    let (num, mult): (&str, u64) = match v.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(syntax()),
            };
            (&v[..v.len() - 1], m)
        }
        Some(_) => (
            v,
            match unit {
                DefaultUnit::Bytes => 1,
                DefaultUnit::Mebibytes => 1 << 20,
            },
        ),
        None => return Err(syntax()),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(syntax());
    }
    let bytes = if let Some((int, frac)) = num.split_once('.') {
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err(syntax());
        }
        let f: f64 = num.parse().map_err(|_| syntax())?;
        let b = f * mult as f64;
        if !b.is_finite() || b >= u64::MAX as f64 {
            return Err(SizeError::Overflow {
                option: option.to_string(),
                value: value.to_string(),
            });
        }
        b as u64
    } else {
        let n: u64 = num.parse().map_err(|_| SizeError::Overflow {
            option: option.to_string(),
            value: value.to_string(),
        })?;
        n.checked_mul(mult).ok_or_else(|| SizeError::Overflow {
            option: option.to_string(),
            value: value.to_string(),
        })?
    };
    Ok(bytes)
}

/// Formats a byte count the short way QEMU users read it (`512M`, `2G`, `1536M`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (m, s) in UNITS {
        if bytes >= m && bytes % m == 0 {
            return format!("{}{}", bytes / m, s);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_default_unit() {
        let p = |s| parse_size("-m", s, DefaultUnit::Mebibytes);
        assert_eq!(p("128"), Ok(128 << 20));
        assert_eq!(p("512M"), Ok(512 << 20));
        assert_eq!(p("512m"), Ok(512 << 20));
        assert_eq!(p("2G"), Ok(2 << 30));
        assert_eq!(p("1T"), Ok(1 << 40));
        assert_eq!(p("64K"), Ok(64 << 10));
        assert_eq!(p("1.5G"), Ok(3 << 29));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(parse_size("x", "4096", DefaultUnit::Bytes), Ok(4096));
    }

    #[test]
    fn errors_name_option_and_value() {
        let p = |s| {
            parse_size("-m", s, DefaultUnit::Mebibytes)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            p("lots"),
            "-m: 'lots' is not a size (expected a number with an optional K, M, G or T suffix, e.g. 512M or 2G)"
        );
        assert_eq!(p("1X").split(':').next(), Some("-m"));
        assert!(p("").contains("'' is not a size"));
        assert_eq!(
            p("99999999999999999999T"),
            "-m: '99999999999999999999T' is too large"
        );
        assert_eq!(p("20000000T"), "-m: '20000000T' is too large");
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1000), "1000");
    }
}
