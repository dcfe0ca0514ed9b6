//! `strata --help` (etcd's usage lines and flag sections, generated from the flag table with
//! each flag's default and, where Strata does not honour it, what it does instead),
//! `strata --version` (etcd's version lines), and the "Flags" section of
//! `docs/operations.md`.

use std::fmt::Write as _;

use super::table::{Disposition, FLAGS, Section};

/// The usage lines Go's flag package prints (to stderr) before a syntax error, and `--help`
/// prints first.
pub const USAGE: &str = "Usage:

  strata [flags]
    Start a Strata member (etcd-compatible; flags are etcd's).

  strata --version
    Show the version of Strata.

  strata -h | --help
    Show the help information about Strata.

  strata --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
";

/// The full `--help` text.
pub fn help_text() -> String {
    let mut out = String::from(USAGE);
    for section in Section::ALL {
        let _ = write!(out, "\n{}:\n", section.title());
        for f in FLAGS.iter().filter(|f| f.section == section) {
            let default = if f.name == "data-dir" {
                "${name}.strata"
            } else {
                f.default
            };
            let _ = writeln!(out, "  --{} '{default}'\n    {}", f.name, f.usage);
            if f.disposition != Disposition::Honoured {
                let _ = writeln!(
                    out,
                    "    [Strata: {}: {}]",
                    f.disposition.as_str(),
                    f.reason
                );
            }
        }
    }
    out.push_str(
        "\nEvery flag can also be set as an environment variable: ETCD_ and the flag name in upper \
         case with dashes as underscores (ETCD_DATA_DIR); a flag on the command line wins.\n\
         \nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n",
    );
    out
}

/// Go's name for the architecture (`GOARCH`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The `--version` text: etcd's lines, with Strata's version and the etcd API it speaks.
pub fn version_text() -> String {
    format!(
        "strata Version: {}\netcd API Version: {}\nRust Version: {}\nOS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        crate::ETCD_VERSION,
        env!("STRATA_RUSTC_VERSION"),
        std::env::consts::OS,
        go_arch()
    )
}

/// The "Flags" section of `docs/operations.md`: one row per flag, from the table.
pub fn flags_markdown() -> String {
    let mut out = String::from(
        "## Flags\n\n\
         <!-- Generated from server/src/config/table.rs; a test keeps it equal \
         (STRATA_UPDATE_DOCS=1 cargo test -p strata-server --lib config rewrites it). -->\n\n\
         `strata` accepts every flag of etcd 3.5's `etcd --help` for one member, etcd 3.6's \
         non-experimental names and `--feature-gates`, and the legacy names etcd ignores, in \
         Go's flag syntax (`--flag=v`, `--flag v`, `-flag`, booleans as `--flag` or \
         `--flag=true|false`). Each flag is:\n\n\
         - **honoured**: wired to Strata's behaviour;\n\
         - **ignored**: accepted; setting it logs one warning naming the flag and the reason;\n\
         - **refused**: a value other than etcd's default stops `strata` with the reason \
         (exit 1, nothing created on disk), because ignoring it would do something the \
         operator did not ask for.\n\n\
         An unknown flag is Go's `flag provided but not defined: -name` with exit code 2, as \
         etcd. Every flag can also be set as `ETCD_<NAME>` (upper case, dashes as \
         underscores); a flag on the command line wins, and etcd's log lines say which \
         variables were used, shadowed or unrecognized. `--config-file` (or \
         `ETCD_CONFIG_FILE`) reads etcd's YAML config file, whose keys are the flag names \
         (TLS under `client-transport-security` and `peer-transport-security`; durations in \
         nanoseconds, as etcd); the other flags and variables are then ignored with a \
         warning. Unknown keys are ignored, as etcd does, with one warning each.\n\n\
         | flag | etcd default | Strata | what Strata does, or why not |\n|---|---|---|---|\n",
    );
    for f in FLAGS {
        let default = match f.default {
            "" => String::new(),
            d => format!("`{}`", d.replace('|', "\\|")),
        };
        let note = match (f.disposition, f.reason) {
            (Disposition::Honoured, "") => f.usage,
            (_, reason) => reason,
        };
        let _ = writeln!(
            out,
            "| `--{}` | {default} | {} | {} |",
            f.name,
            f.disposition.as_str(),
            note.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_visible_flag_under_etcds_sections() {
        let h = help_text();
        for title in [
            "Member:",
            "Clustering:",
            "Security:",
            "Logging:",
            "Unsafe feature:",
        ] {
            assert!(h.contains(&format!("\n{title}\n")), "{title}");
        }
        for f in FLAGS.iter().filter(|f| f.section != Section::Hidden) {
            assert!(h.contains(&format!("  --{} '", f.name)), "{}", f.name);
        }
        assert!(h.contains("  --data-dir '${name}.strata'"));
        assert!(h.contains("  --snapshot-count '100000'"));
    }

    #[test]
    fn version_lines() {
        let v = version_text();
        assert!(v.starts_with(&format!("strata Version: {}\n", env!("CARGO_PKG_VERSION"))));
        assert!(v.contains("etcd API Version: 3.5.17\n"));
        assert!(v.contains("Rust Version: rustc "));
        assert!(v.contains(&format!("OS/Arch: {}/", std::env::consts::OS)));
    }

    /// docs/operations.md holds the generated table; `STRATA_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn operations_doc_has_the_flag_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let want = flags_markdown();
        let start = doc.find("## Flags\n");
        let end = start.map(|s| {
            doc[s + 1..]
                .find("\n## ")
                .map_or(doc.len(), |e| s + 1 + e + 1)
        });
        let current = match (start, end) {
            (Some(s), Some(e)) => &doc[s..e],
            _ => "",
        };
        if current.trim_end() == want.trim_end() {
            return;
        }
        if std::env::var("STRATA_UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let new = match (start, end) {
                (Some(s), Some(e)) if e < doc.len() => {
                    format!("{}{want}\n{}", &doc[..s], &doc[e..])
                }
                (Some(s), Some(_)) => format!("{}{want}", &doc[..s]),
                _ if doc.is_empty() => format!("# Operating Strata\n\n{want}"),
                _ => format!("{}\n{want}", doc.trim_end_matches('\n').to_string() + "\n"),
            };
            std::fs::write(&path, new).unwrap();
            return;
        }
        panic!(
            "docs/operations.md's Flags section differs from the flag table; run \
             STRATA_UPDATE_DOCS=1 cargo test -p strata-server --lib config"
        );
    }
}
