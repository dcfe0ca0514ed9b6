//! Flag values as Go's `flag` package parses them: `strconv.ParseBool`, `ParseUint` and
//! `ParseInt` with base prefixes, and `time.ParseDuration` (`1h30m`, `1.5s`, `250ms`), so a
//! value etcd accepts is accepted here and one it rejects is rejected with its message.

use std::time::Duration;

/// How a flag's value is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A boolean: `--flag` alone means true; `--flag=false` (never `--flag false`).
    Bool,
    /// Any string.
    Str,
    /// An unsigned 64-bit integer.
    Uint,
    /// An unsigned 32-bit integer.
    Uint32,
    /// A signed 64-bit integer.
    Int,
    /// A Go duration (`10m`, `1h30m`, `500ms`, `0`).
    Duration,
    /// One of a fixed set of strings (etcd's `SelectiveStringValue`).
    Choice(&'static [&'static str]),
    /// A legacy flag etcd accepts and ignores (`--v`, `--force`, ...): behaves as a boolean
    /// that takes any value.
    Legacy,
}

/// A parsed flag value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `Kind::Bool` and `Kind::Legacy`.
    Bool(bool),
    /// `Kind::Str` and `Kind::Choice`.
    Str(String),
    /// `Kind::Uint` and `Kind::Uint32`.
    Uint(u64),
    /// `Kind::Int`.
    Int(i64),
    /// `Kind::Duration`, in nanoseconds (Go's durations may be negative).
    Duration(i64),
}

impl Kind {
    /// Whether `--flag` alone is complete (Go's `IsBoolFlag`).
    pub fn is_bool(self) -> bool {
        matches!(self, Kind::Bool | Kind::Legacy)
    }

    /// Parses `s` as Go's flag package does; the error is the text Go puts after the colon
    /// (`parse error`, `value out of range`, `invalid value`).
    pub fn parse(self, s: &str) -> Result<Value, &'static str> {
        match self {
            Kind::Bool => parse_bool(s).map(Value::Bool),
            Kind::Legacy => Ok(Value::Bool(true)),
            Kind::Str => Ok(Value::Str(s.to_string())),
            Kind::Choice(valid) => {
                if valid.contains(&s) {
                    Ok(Value::Str(s.to_string()))
                } else {
                    Err("invalid value")
                }
            }
            Kind::Uint => parse_uint(s, u64::MAX).map(Value::Uint),
            Kind::Uint32 => parse_uint(s, u64::from(u32::MAX)).map(Value::Uint),
            Kind::Int => parse_int(s).map(Value::Int),
            Kind::Duration => go_duration_nanos(s).map(Value::Duration),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => f.write_str(s),
            Value::Uint(n) => write!(f, "{n}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Duration(ns) => f.write_str(&go_duration_string(*ns)),
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, &'static str> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error"),
    }
}

/// Splits Go's base prefix (`0x`, `0o`, `0b`, a leading `0` for octal) from the digits.
fn radix(s: &str) -> (u32, &str) {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some("0x") => (16, &s[2..]),
        Some("0o") => (8, &s[2..]),
        Some("0b") => (2, &s[2..]),
        _ if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        _ => (10, s),
    }
}

/// Go's `strconv.ParseUint(s, 0, bits)` with the bit size given as the maximum.
fn parse_uint(s: &str, max: u64) -> Result<u64, &'static str> {
    let (base, digits) = radix(s);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err("parse error");
    }
    match u64::from_str_radix(digits, base) {
        Ok(n) if n <= max => Ok(n),
        _ => Err("value out of range"),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_int(s: &str) -> Result<i64, &'static str> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = parse_uint(rest, u64::MAX)?;
    if neg {
        0i64.checked_sub_unsigned(n).ok_or("value out of range")
    } else {
        i64::try_from(n).map_err(|_| "value out of range")
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: an optional sign, then one or more decimal
/// numbers each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone is allowed.
fn go_duration_nanos(s: &str) -> Result<i64, &'static str> {
    const ERR: &str = "parse error";
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(ERR);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(ERR);
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(ERR),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| ERR)?
        };
        let mut part = whole.checked_mul(scale).ok_or(ERR)?;
        // The fraction contributes digit by digit, as Go does, truncating below 1 ns.
        let mut unit_frac = scale;
        for d in frac_part.bytes() {
            unit_frac /= 10;
            part += u128::from(d - b'0') * unit_frac;
        }
        total = total.checked_add(part).ok_or(ERR)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(ERR);
        }
        rest = after;
    }
    let total = i128::try_from(total).map_err(|_| ERR)?;
    i64::try_from(if neg { -total } else { total }).map_err(|_| ERR)
}

/// The feature gates etcd 3.6 knows, with their defaults (`pkg/featuregate` adds `AllAlpha` and
/// `AllBeta`, which set every alpha or beta gate left unset).
pub const FEATURE_GATES: &[(&str, bool)] = &[
    ("AllAlpha", false),
    ("AllBeta", false),
    ("CompactHashCheck", false),
    ("InitialCorruptCheck", false),
    ("LeaseCheckpoint", false),
    ("LeaseCheckpointPersist", false),
    ("SetMemberLocalAddr", false),
    ("StopGRPCServiceOnDefrag", false),
    ("TxnModeWriteWithSharedBuffer", true),
];

/// Parses `--feature-gates` (`Gate=true,Other=false`) as etcd 3.6's `featureGate.Set` does.
pub fn parse_feature_gates(s: &str) -> Result<Vec<(&'static str, bool)>, String> {
    let mut out: Vec<(&'static str, bool)> = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => return Err(format!("missing bool value for {}", item.trim())),
        };
        let b = parse_bool(v).map_err(|_| {
            format!(
                "invalid value of {k}={v}, err: strconv.ParseBool: parsing {v:?}: invalid syntax"
            )
        })?;
        let Some((name, _)) = FEATURE_GATES.iter().find(|(g, _)| *g == k) else {
            return Err(format!("unrecognized feature gate: {k}"));
        };
        out.retain(|(n, _)| n != name);
        out.push((name, b));
    }
    Ok(out)
}

/// Parses `text` for the flag `name` of kind `kind`: the kind's syntax, and for
/// `--feature-gates` the gate list.
pub fn parse_value(name: &str, kind: Kind, text: &str) -> Result<Value, String> {
    let v = kind.parse(text).map_err(String::from)?;
    if name == "feature-gates" {
        parse_feature_gates(text)?;
    }
    Ok(v)
}

/// Parses a Go duration (`500ms`, `5s`, `10m`, `1h30m`, `1.5h`); negative durations are
/// refused here because every duration Strata uses is a length of time.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match go_duration_nanos(s) {
        Ok(ns) if ns >= 0 => Ok(Duration::from_nanos(ns.unsigned_abs())),
        Ok(_) => Err(format!("invalid duration {s:?}: must not be negative")),
        Err(_) => Err(format!(
            "invalid duration {s:?} (a number with a unit: ns, us, ms, s, m, h)"
        )),
    }
}

/// Formats nanoseconds as Go's `Duration.String` does for whole units (`10m0s`, `5s`,
/// `100ms`), for help text and messages.
pub fn go_duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let n = ns.unsigned_abs();
    if n < 1_000_000_000 {
        return match n {
            n if n % 1_000_000 == 0 => format!("{sign}{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{sign}{}µs", n / 1_000),
            n => format!("{sign}{n}ns"),
        };
    }
    let (h, rem) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let secs = rem as f64 / 1e9;
    let mut out = String::from(sign);
    if h > 0 {
        out += &format!("{h}h");
    }
    if h > 0 || m > 0 {
        out += &format!("{m}m");
    }
    out += &format!("{secs}s");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bools() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert_eq!(parse_bool("yes"), Err("parse error"));
        assert_eq!(parse_bool(""), Err("parse error"));
    }

    #[test]
    fn go_integers() {
        assert_eq!(Kind::Uint.parse("10000"), Ok(Value::Uint(10000)));
        assert_eq!(Kind::Uint.parse("0x10"), Ok(Value::Uint(16)));
        assert_eq!(Kind::Uint.parse("010"), Ok(Value::Uint(8)));
        assert_eq!(Kind::Uint.parse("0"), Ok(Value::Uint(0)));
        assert_eq!(Kind::Uint.parse("-1"), Err("parse error"));
        assert_eq!(Kind::Uint.parse("abc"), Err("parse error"));
        assert_eq!(Kind::Uint.parse(""), Err("parse error"));
        assert_eq!(Kind::Uint32.parse("4294967296"), Err("value out of range"));
        assert_eq!(
            Kind::Uint.parse("99999999999999999999"),
            Err("value out of range")
        );
        assert_eq!(Kind::Int.parse("-5"), Ok(Value::Int(-5)));
        assert_eq!(
            Kind::Int.parse("-9223372036854775808"),
            Ok(Value::Int(i64::MIN))
        );
        assert_eq!(
            Kind::Int.parse("9223372036854775808"),
            Err("value out of range")
        );
    }

    #[test]
    fn go_durations() {
        let d = |s| go_duration_nanos(s);
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("5s"), Ok(5_000_000_000));
        assert_eq!(d("10m"), Ok(600_000_000_000));
        assert_eq!(d("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(d("1.5s"), Ok(1_500_000_000));
        assert_eq!(d(".5s"), Ok(500_000_000));
        assert_eq!(d("250ms"), Ok(250_000_000));
        assert_eq!(d("3us"), Ok(3_000));
        assert_eq!(d("3µs"), Ok(3_000));
        assert_eq!(d("-2s"), Ok(-2_000_000_000));
        for bad in ["", "5", "s", "5 s", "5x", ".s", "1h-1m", "5parsecs"] {
            assert_eq!(d(bad), Err("parse error"), "{bad:?}");
        }
        assert_eq!(d("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(d("9223372036854775808ns"), Err("parse error"));
        assert_eq!(d("-9223372036854775808ns"), Ok(i64::MIN));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("-5s").is_err());
        assert_eq!(go_duration_string(600_000_000_000), "10m0s");
        assert_eq!(go_duration_string(100_000_000), "100ms");
        assert_eq!(go_duration_string(5_000_000_000), "5s");
        assert_eq!(go_duration_string(7_200_000_000_000), "2h0m0s");
    }

    #[test]
    fn feature_gates_as_etcd_36() {
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck=true"),
            Ok(vec![("InitialCorruptCheck", true)])
        );
        assert_eq!(
            parse_feature_gates(" InitialCorruptCheck = true ,,StopGRPCServiceOnDefrag=false"),
            Ok(vec![
                ("InitialCorruptCheck", true),
                ("StopGRPCServiceOnDefrag", false)
            ])
        );
        assert_eq!(parse_feature_gates(""), Ok(vec![]));
        assert_eq!(
            parse_feature_gates("Bogus=true"),
            Err("unrecognized feature gate: Bogus".into())
        );
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck"),
            Err("missing bool value for InitialCorruptCheck".into())
        );
        assert!(
            parse_feature_gates("InitialCorruptCheck=yes")
                .unwrap_err()
                .starts_with("invalid value of InitialCorruptCheck=yes")
        );
    }
}
