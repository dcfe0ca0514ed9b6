//! The command line and `ETCD_*` variables, read as etcd 3.5 reads them: Go's `flag` package
//! (`-name`, `--name`, `--name=v`, `--name v`; booleans only as `--name` or `--name=v`;
//! parsing stops at the first non-flag or `--`) and etcd's `pkg/flags.SetFlagsFromEnv` (a
//! variable fills a flag the command line left unset). Messages are Go's and etcd's.

use super::table::{self, FlagSpec};
use super::value::{Value, parse_value};
use super::{ConfigError, Source, Warning};

/// What the command line said.
#[derive(Debug, Default)]
pub(crate) struct Args {
    /// Flags in the order given (a flag given twice appears twice; the last wins).
    pub set: Vec<(&'static FlagSpec, Value)>,
    /// `-h`, `-help` or `--help` was given.
    pub help: bool,
}

/// Parses `args` (without the program name) as Go's `flag.FlagSet.Parse` does.
pub(crate) fn parse_args(args: &[String]) -> Result<Args, ConfigError> {
    let mut out = Args::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let mut name = &arg[1..];
        if let Some(rest) = name.strip_prefix('-') {
            if rest.is_empty() {
                // `--` ends the flags.
                i += 1;
                break;
            }
            name = rest;
        }
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(ConfigError::Usage(format!("bad flag syntax: {arg}")));
        }
        i += 1;
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name, None),
        };
        let Some(spec) = table::lookup(name) else {
            if name == "help" || name == "h" {
                out.help = true;
                return Ok(out);
            }
            return Err(ConfigError::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = if spec.kind.is_bool() {
            let text = inline.unwrap_or("true");
            spec.kind.parse(text).map_err(|e| {
                ConfigError::Usage(format!("invalid boolean value {text:?} for -{name}: {e}"))
            })?
        } else {
            let text = match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).ok_or_else(|| {
                        ConfigError::Usage(format!("flag needs an argument: -{name}"))
                    })?;
                    i += 1;
                    v.as_str()
                }
            };
            parse_value(spec.name, spec.kind, text).map_err(|e| {
                ConfigError::Usage(format!("invalid value {text:?} for flag -{name}: {e}"))
            })?
        };
        out.set.push((spec, value));
    }
    if let Some(extra) = args.get(i) {
        // etcd checks the leftover arguments after parsing and calls them bad flags.
        return Err(ConfigError::Invalid(format!(
            "'{extra}' is not a valid flag"
        )));
    }
    Ok(out)
}

/// etcd's `FlagToEnv`: `data-dir` → `ETCD_DATA_DIR`.
pub fn flag_to_env(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// Fills the flags the command line left unset from `ETCD_*` variables, as etcd's
/// `SetFlagsFromEnv` and `verifyEnv` do, returning the values and the log lines etcd prints.
pub(crate) fn from_env(
    env: &[(String, String)],
    on_command_line: &[&'static str],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(&'static FlagSpec, Value, Source)>, ConfigError> {
    let mut out = Vec::new();
    for (key, val) in env {
        if !key.starts_with("ETCD_") {
            continue;
        }
        if key == "ETCD_VERSION" && !val.is_empty() {
            // etcd unsets it so that it cannot turn `--version` on.
            warnings.push(Warning::warn(format!(
                "cannot set special environment variable {key}={val}"
            )));
            continue;
        }
        let spec = table::FLAGS.iter().find(|f| flag_to_env(f.name) == *key);
        match spec {
            Some(spec) if on_command_line.contains(&spec.name) => {
                warnings.push(Warning::info(format!(
                    "recognized environment variable {key}, but unused: shadowed by corresponding flag"
                )));
            }
            Some(spec) if !val.is_empty() => {
                let value = parse_value(spec.name, spec.kind, val).map_err(|e| {
                    ConfigError::Invalid(format!("invalid value {val:?} for {key}: {e}"))
                })?;
                warnings.push(Warning::info(format!(
                    "recognized and used environment variable {key}={val}"
                )));
                out.push((spec, value, Source::Env(key.clone())));
            }
            // An empty value sets nothing; etcd then reports it as unrecognized.
            _ => warnings.push(Warning::warn(format!(
                "unrecognized environment variable {key}={val}"
            ))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn parsed(a: &[&str]) -> Vec<(&'static str, Value)> {
        parse_args(&args(a))
            .unwrap()
            .set
            .into_iter()
            .map(|(f, v)| (f.name, v))
            .collect()
    }

    fn err(a: &[&str]) -> ConfigError {
        parse_args(&args(a)).unwrap_err()
    }

    #[test]
    fn go_flag_syntax() {
        let want = vec![("name", Value::Str("n1".into()))];
        assert_eq!(parsed(&["--name=n1"]), want);
        assert_eq!(parsed(&["--name", "n1"]), want);
        assert_eq!(parsed(&["-name", "n1"]), want);
        assert_eq!(parsed(&["-name=n1"]), want);
        assert_eq!(
            parsed(&["--client-cert-auth"]),
            vec![("client-cert-auth", Value::Bool(true))]
        );
        assert_eq!(
            parsed(&["--client-cert-auth=false"]),
            vec![("client-cert-auth", Value::Bool(false))]
        );
        assert_eq!(parsed(&["--name="]), vec![("name", Value::Str("".into()))]);
        // Parsing stops at `--`.
        assert_eq!(
            parsed(&["--name=a", "--"]),
            vec![("name", Value::Str("a".into()))]
        );
    }

    #[test]
    fn go_flag_errors() {
        assert_eq!(
            err(&["--foo"]),
            ConfigError::Usage("flag provided but not defined: -foo".into())
        );
        assert_eq!(
            err(&["--name"]),
            ConfigError::Usage("flag needs an argument: -name".into())
        );
        assert_eq!(
            err(&["---name=x"]),
            ConfigError::Usage("bad flag syntax: ---name=x".into())
        );
        assert_eq!(
            err(&["--snapshot-count=abc"]),
            ConfigError::Usage(
                "invalid value \"abc\" for flag -snapshot-count: parse error".into()
            )
        );
        assert_eq!(
            err(&["--client-cert-auth=maybe"]),
            ConfigError::Usage(
                "invalid boolean value \"maybe\" for -client-cert-auth: parse error".into()
            )
        );
        assert_eq!(
            err(&["--initial-cluster-state=bogus"]),
            ConfigError::Usage(
                "invalid value \"bogus\" for flag -initial-cluster-state: invalid value".into()
            )
        );
        // A boolean never takes the next argument, so `true` is left over.
        assert_eq!(
            err(&["--client-cert-auth", "true"]),
            ConfigError::Invalid("'true' is not a valid flag".into())
        );
        assert_eq!(
            err(&["extra"]),
            ConfigError::Invalid("'extra' is not a valid flag".into())
        );
    }

    #[test]
    fn help_is_recognised_anywhere_before_an_error() {
        assert!(parse_args(&args(&["-h"])).unwrap().help);
        assert!(parse_args(&args(&["--name=x", "--help"])).unwrap().help);
        assert!(parse_args(&args(&["--help=false"])).unwrap().help);
    }

    #[test]
    fn env_names() {
        assert_eq!(flag_to_env("data-dir"), "ETCD_DATA_DIR");
        assert_eq!(
            flag_to_env("experimental-initial-corrupt-check"),
            "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK"
        );
    }
}
