//! libvirt's scaled integers (`<memory unit='GiB'>4</memory>`, `<page size= unit=>`,
//! `<cell memory= unit=>`), with libvirt's own rules (`virScaleInteger` in
//! src/util/virutil.c): the unit is case-insensitive; `b`, `byte`, `bytes` are bytes; a
//! prefix letter `k m g t p e` alone or followed by `iB` is a power of 1024, followed by
//! `B` a power of 1000 (`KB` = 1000, `KiB` = `k` = 1024); no unit is the element's default
//! (KiB for every memory size). The value is an unsigned decimal integer.

/// The units an error message lists.
pub(super) const UNITS: &str =
    "b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB";

/// libvirt's default unit for memory sizes: KiB.
pub(super) const KIB: u64 = 1024;

/// Bytes per `unit`, or `None` for a unit libvirt does not know. An empty unit is the
/// caller's default (libvirt treats `unit=''` as no unit).
pub(super) fn unit_scale(unit: &str, default: u64) -> Option<u64> {
    if unit.is_empty() {
        return Some(default);
    }
    let lower = unit.to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        return Some(1);
    }
    // Split after the first character, not the first byte: the unit is user text and may
    // start with a multi-byte character (`unit='éB'`).
    let mut chars = lower.chars();
    let prefix = chars.next()?;
    let rest = chars.as_str();
    let base: u64 = match rest {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    let power = match prefix {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Why a scaled integer is not acceptable (the caller names the element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ScaleError {
    NotANumber,
    UnknownUnit,
    TooLarge,
}

/// `value` (decimal text) times `unit`'s scale, in bytes.
pub(super) fn scaled(value: &str, unit: Option<&str>, default: u64) -> Result<u64, ScaleError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScaleError::NotANumber);
    }
    let scale = unit_scale(unit.unwrap_or(""), default).ok_or(ScaleError::UnknownUnit)?;
    let n: u64 = v.parse().map_err(|_| ScaleError::TooLarge)?;
    n.checked_mul(scale).ok_or(ScaleError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_unit_rules() {
        let s = |u: &str| unit_scale(u, KIB);
        assert_eq!(s(""), Some(1024));
        for u in ["b", "B", "byte", "Bytes"] {
            assert_eq!(s(u), Some(1), "{u}");
        }
        assert_eq!(s("KB"), Some(1000));
        assert_eq!(s("kb"), Some(1000));
        assert_eq!(s("k"), Some(1024));
        assert_eq!(s("KiB"), Some(1024));
        assert_eq!(s("kib"), Some(1024));
        assert_eq!(s("M"), Some(1 << 20));
        assert_eq!(s("MB"), Some(1_000_000));
        assert_eq!(s("GiB"), Some(1 << 30));
        assert_eq!(s("GB"), Some(1_000_000_000));
        assert_eq!(s("T"), Some(1 << 40));
        assert_eq!(s("PiB"), Some(1 << 50));
        assert_eq!(s("EiB"), Some(1 << 60));
        assert_eq!(s("EB"), Some(1_000_000_000_000_000_000));
        for bad in [
            "XB",
            "KiBB",
            "Ki",
            "x",
            "KBytes",
            "iB",
            "éB",
            "é",
            "Kéb",
            "ẞiB",
            "\u{1F600}",
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(scaled("4", Some("GiB"), KIB), Ok(4 << 30));
        assert_eq!(scaled(" 2048 ", None, KIB), Ok(2 << 20));
        assert_eq!(scaled("1", Some("KB"), KIB), Ok(1000));
        assert_eq!(scaled("2x", None, KIB), Err(ScaleError::NotANumber));
        assert_eq!(scaled("-1", None, KIB), Err(ScaleError::NotANumber));
        assert_eq!(scaled("", None, KIB), Err(ScaleError::NotANumber));
        assert_eq!(scaled("1", Some("XB"), KIB), Err(ScaleError::UnknownUnit));
        assert_eq!(scaled("16", Some("EiB"), KIB), Err(ScaleError::TooLarge));
        assert_eq!(
            scaled("99999999999999999999", None, KIB),
            Err(ScaleError::TooLarge)
        );
    }
}
