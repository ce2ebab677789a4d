//! The configuration file (`--config pier.toml`, `PIER_CONFIG`) of the commands that take
//! `pier serve`'s settings (`serve`, `config print`, `doctor`).
//!
//! Generic over clap: the file's keys are the long flag names of the command, whatever they are,
//! so a flag added to `ServeArgs` later works in the file without touching this module. A key
//! is applied only where the flag's value came from its default (or nowhere), which gives the
//! precedence flag > environment > file > default. Unknown keys are refused with their name.

use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The id (and long name) of the flag that names the file.
pub const CONFIG_ARG: &str = "config";

/// Where an effective value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::File => "config file",
            Source::Default => "default",
        }
    }
}

/// The parsed command line with the file merged in.
pub struct Parsed {
    pub matches: ArgMatches,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Ids of the arguments whose value came from the file.
    pub from_file: BTreeSet<String>,
}

impl Parsed {
    /// The matches of the innermost subcommand (the one a config file applies to).
    pub fn leaf(&self) -> &ArgMatches {
        let mut m = &self.matches;
        while let Some((_, sub)) = m.subcommand() {
            m = sub;
        }
        m
    }

    /// Where the value of `id` in the innermost subcommand came from (`None`: unset).
    pub fn source(&self, id: &str) -> Option<Source> {
        match self.leaf().value_source(id)? {
            ValueSource::CommandLine if self.from_file.contains(id) => Some(Source::File),
            ValueSource::CommandLine => Some(Source::Flag),
            ValueSource::EnvVariable => Some(Source::Env),
            _ => Some(Source::Default),
        }
    }
}

/// The innermost subcommand `matches` selected, and its matches.
fn leaf<'a>(mut cmd: &'a Command, mut m: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    while let Some((name, sub)) = m.subcommand() {
        match cmd.find_subcommand(name) {
            Some(c) => {
                cmd = c;
                m = sub;
            }
            None => break,
        }
    }
    (cmd, m)
}

/// Parses `argv` with `cmd`; when the chosen subcommand has a `--config` flag that is set (flag
/// or `PIER_CONFIG`), merges the file in. Clap's own errors (and `--help`, `--version`) come
/// back as `clap::Error` inside the anyhow error, so the caller can let clap render them.
pub fn parse(mut cmd: Command, argv: Vec<OsString>) -> Result<Parsed> {
    cmd.build();
    let first = cmd.clone().try_get_matches_from(&argv)?;
    let (sub, m) = leaf(&cmd, &first);
    let has_config = sub.get_arguments().any(|a| a.get_id() == CONFIG_ARG);
    let Some(path) = has_config
        .then(|| m.get_raw(CONFIG_ARG))
        .flatten()
        .and_then(|mut v| v.next())
        .map(PathBuf::from)
    else {
        return Ok(Parsed {
            matches: first,
            file: None,
            from_file: BTreeSet::new(),
        });
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let (extra, from_file) = file_args(sub, m, &path, &text)?;
    let mut argv = argv;
    argv.extend(extra);
    let matches = cmd.try_get_matches_from(&argv).map_err(|e| {
        anyhow!(
            "config file {}: {}",
            path.display(),
            first_line(&e.render().to_string())
        )
    })?;
    Ok(Parsed {
        matches,
        file: Some(path),
        from_file,
    })
}

/// The first meaningful line of a clap error, without its `error: ` prefix.
pub fn first_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").to_owned()
}

/// The command-line arguments the file adds to `sub` (given its current matches `m`): one
/// `--key=value` per key whose flag was not given on the command line or in the environment.
pub fn file_args(
    sub: &Command,
    m: &ArgMatches,
    path: &Path,
    text: &str,
) -> Result<(Vec<OsString>, BTreeSet<String>)> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        anyhow!(
            "config file {} line {line}: {}",
            path.display(),
            e.message().trim()
        )
    })?;
    let mut out = Vec::new();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let arg = sub
            .get_arguments()
            .find(|a| {
                // A flag's old names (its long aliases, e.g. `webhook-allow-private`) work in
                // the file as on the command line.
                let named = a.get_long() == Some(key.as_str())
                    || a
                        .get_all_aliases()
                        .is_some_and(|names| names.contains(&key.as_str()));
                named && a.get_id() != CONFIG_ARG
            })
            .ok_or_else(|| {
                anyhow!(
                    "config file {}: unknown key `{key}` (keys are the long flag names of `pier {}`, e.g. `listen`, `database-url`; see `pier {} --help`)",
                    path.display(),
                    sub.get_name(),
                    sub.get_name()
                )
            })?;
        let id = arg.get_id().as_str();
        if matches!(
            m.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let bad =
            |what: &str| anyhow!("config file {}: key `{key}` must be {what}", path.display());
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let toml::Value::Boolean(b) = value else {
                    return Err(bad("true or false"));
                };
                let on = *b == matches!(arg.get_action(), ArgAction::SetTrue);
                if on {
                    out.push(OsString::from(format!("--{key}")));
                    from_file.insert(id.to_owned());
                }
            }
            ArgAction::Set | ArgAction::Append => {
                let values: Vec<String> =
                    match value {
                        toml::Value::Array(items) => items
                            .iter()
                            .map(|v| scalar(v).ok_or_else(|| bad("a list of strings or numbers")))
                            .collect::<Result<_>>()?,
                        v => vec![scalar(v)
                            .ok_or_else(|| bad("a string, a number, a boolean or a list"))?],
                    };
                if values.is_empty() {
                    continue;
                }
                let many = matches!(arg.get_action(), ArgAction::Append)
                    || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
                let joined = match arg.get_value_delimiter() {
                    Some(d) => vec![values.join(&d.to_string())],
                    None if values.len() > 1 && !many => {
                        return Err(bad("a single value"));
                    }
                    None => values,
                };
                for v in joined {
                    out.push(OsString::from(format!("--{key}={v}")));
                }
                from_file.insert(id.to_owned());
            }
            other => bail!(
                "config file {}: key `{key}` cannot be set in a file ({other:?} flag)",
                path.display()
            ),
        }
    }
    Ok((out, from_file))
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether an argument holds a secret: clap's `hide_env_values` marks them (the server key,
/// the demo secret), and any flag named like one.
pub fn is_secret(arg: &clap::Arg) -> bool {
    let long = arg.get_long().unwrap_or_default();
    arg.is_hide_env_values_set() || long.contains("secret") || long.contains("password")
}

/// `postgres://user:password@host/db` with the password replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// `pier config print`: every setting of the subcommand, in the file's format, with where its
/// value came from; secrets redacted. The output is a valid config file (unset settings and
/// secrets are comments).
pub fn render(cmd: &Command, parsed: &Parsed) -> String {
    let mut cmd = cmd.clone();
    cmd.build();
    let (sub, m) = leaf(&cmd, &parsed.matches);
    let mut out = String::new();
    out.push_str(&format!(
        "# Effective configuration of `pier serve` (precedence: flag > environment > config file > default)\n# config file: {}\n",
        parsed
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into())
    ));
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        if id == CONFIG_ARG || matches!(long, "help" | "version") {
            continue;
        }
        let source = parsed.source(id);
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let is_flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let Some(source) = source.filter(|_| !raw.is_empty() || is_flag) else {
            // Unset options say what happens instead: the first line of their help.
            let help = arg
                .get_help()
                .map(|h| h.to_string())
                .and_then(|h| h.lines().next().map(str::to_owned))
                .unwrap_or_default();
            if help.is_empty() {
                out.push_str(&format!("# {long} = (unset)\n"));
            } else {
                out.push_str(&format!("# {long} = (unset)  # {help}\n"));
            }
            continue;
        };
        let value = if is_flag {
            let on = m.get_flag(id);
            on.to_string()
        } else if is_secret(arg) {
            out.push_str(&format!("# {long} = \"<redacted>\"  # {}\n", source.name()));
            continue;
        } else {
            let shown: Vec<String> = raw
                .iter()
                .map(|v| {
                    let v = if long.contains("url") {
                        redact_url(v)
                    } else {
                        v.clone()
                    };
                    let numeric = !v.is_empty()
                        && v.chars().all(|c| c.is_ascii_digit() || c == '.')
                        && v.parse::<f64>().is_ok()
                        && !v.starts_with('0')
                        || v == "0";
                    if numeric {
                        v
                    } else {
                        toml::Value::String(v).to_string()
                    }
                })
                .collect();
            if shown.len() == 1 {
                shown.into_iter().next().unwrap_or_default()
            } else {
                format!("[{}]", shown.join(", "))
            }
        };
        out.push_str(&format!("{long} = {value}  # {}\n", source.name()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn serve_cmd() -> Command {
        let mut cmd = crate::Cli::command();
        cmd.build();
        cmd
    }

    /// Every long flag of `pier serve` — including flags added after this test was written —
    /// can be set from the config file, and the value lands as if it had been given as a flag.
    #[test]
    fn every_serve_flag_is_accepted_in_the_config_file() {
        let cmd = serve_cmd();
        let serve = cmd.find_subcommand("serve").expect("serve");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if arg.get_id() == CONFIG_ARG || matches!(long, "help" | "version") {
                continue;
            }
            let is_flag = matches!(arg.get_action(), ArgAction::SetTrue);
            // Candidate values: the flag's own possible or default values, then common shapes
            // (a number, an address, a network, a URL, a word).
            let mut candidates: Vec<String> = Vec::new();
            if is_flag {
                candidates.push("true".into());
            } else {
                candidates.extend(
                    arg.get_possible_values()
                        .iter()
                        .map(|p| format!("{:?}", p.get_name())),
                );
                candidates.extend(
                    arg.get_default_values()
                        .iter()
                        .map(|v| toml::Value::String(v.to_string_lossy().into()).to_string()),
                );
                for c in [
                    "7",
                    "\"7\"",
                    "600",
                    "\"127.0.0.1\"",
                    "\"127.0.0.1:9\"",
                    "\"127.0.0.1/32\"",
                    "[\"127.0.0.1/32\"]",
                    "\"http://127.0.0.1:9\"",
                    "\"sqlite:x.db\"",
                    "\"word\"",
                    "\"0000000000000000000000000000000000000000000000000000000000000000\"",
                ] {
                    candidates.push(c.into());
                }
            }
            let mut ok = false;
            let mut last_err = String::new();
            for c in &candidates {
                let path = dir.path().join("pier.toml");
                std::fs::write(&path, format!("{long} = {c}\n")).expect("write");
                let argv: Vec<OsString> = ["pier", "serve", "--config"]
                    .iter()
                    .map(OsString::from)
                    .chain([path.clone().into_os_string()])
                    .collect();
                match parse(crate::Cli::command(), argv) {
                    Ok(p) => {
                        let id = arg.get_id().as_str();
                        if p.from_file.contains(id) && p.source(id) == Some(Source::File) {
                            ok = true;
                            break;
                        }
                        last_err = format!("value not taken from the file ({c})");
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        assert!(
                            !msg.contains("unknown key"),
                            "`{long}` refused as unknown: {msg}"
                        );
                        last_err = msg;
                    }
                }
            }
            assert!(
                ok,
                "`{long}` of `pier serve` could not be set from the config file with any sample value; last: {last_err}"
            );
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} flags seen");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pier.toml");
        let run = |text: &str| {
            std::fs::write(&path, text).expect("write");
            let argv = vec![
                OsString::from("pier"),
                "serve".into(),
                "--config".into(),
                path.clone().into_os_string(),
            ];
            parse(crate::Cli::command(), argv).map(|_| ())
        };
        let e = format!("{:#}", run("lisen = \"127.0.0.1:1\"\n").unwrap_err());
        assert!(e.contains("unknown key `lisen`"), "{e}");
        let e = format!(
            "{:#}",
            run("webhook-allow-private = \"yes\"\n").unwrap_err()
        );
        assert!(
            e.contains("`webhook-allow-private` must be true or false"),
            "{e}"
        );
        // The flag's old name (now an alias of --outbound-allow-private) is still a key.
        assert!(run("webhook-allow-private = true\n").is_ok());
        let e = format!("{:#}", run("listen = \"nowhere\"\n").unwrap_err());
        assert!(e.contains("config file") && e.contains("nowhere"), "{e}");
        let e = format!("{:#}", run("listen = [1, \n").unwrap_err());
        assert!(e.contains("line 1"), "{e}");
    }

    /// Flags of shapes `serve` does not have yet (a list with a delimiter, a repeatable flag,
    /// a number with an environment variable) work from the file too, and keep the precedence.
    #[test]
    fn flags_of_other_shapes_work_from_the_file() {
        use clap::{value_parser, Arg};
        // clap reads an argument's environment variable when the argument is built, so each
        // parse gets a fresh command (as `main` does).
        let cmd = || {
            Command::new("pier").subcommand(
                Command::new("serve")
                    .arg(Arg::new(CONFIG_ARG).long(CONFIG_ARG))
                    .arg(
                        Arg::new("trusted_proxies")
                            .long("trusted-proxies")
                            .value_delimiter(',')
                            .action(ArgAction::Append),
                    )
                    .arg(Arg::new("origin").long("origin").action(ArgAction::Append))
                    .arg(
                        Arg::new("rate")
                            .long("rate")
                            .env("PIER_OPS_UNIT_TEST_RATE")
                            .value_parser(value_parser!(u32))
                            .default_value("10"),
                    )
                    .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)),
            )
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pier.toml");
        std::fs::write(
            &path,
            "trusted-proxies = [\"10.0.0.2/32\", \"10.0.0.3/32\"]\norigin = [\"https://a\", \"https://b\"]\nrate = 20\nquiet = true\n",
        )
        .expect("write");
        let argv = |extra: &[&str]| -> Vec<OsString> {
            let mut v: Vec<OsString> = vec!["pier".into(), "serve".into(), "--config".into()];
            v.push(path.clone().into_os_string());
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let p = parse(cmd(), argv(&[])).expect("parse");
        let m = p.leaf();
        let list = |id: &str| -> Vec<String> {
            m.get_many::<String>(id)
                .map(|v| v.cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(list("trusted_proxies"), ["10.0.0.2/32", "10.0.0.3/32"]);
        assert_eq!(list("origin"), ["https://a", "https://b"]);
        assert_eq!(m.get_one::<u32>("rate"), Some(&20));
        assert!(m.get_flag("quiet"));
        assert_eq!(p.source("rate"), Some(Source::File));
        // A flag beats the file, for lists too.
        let p = parse(cmd(), argv(&["--rate", "30", "--origin", "https://c"])).expect("parse");
        assert_eq!(p.leaf().get_one::<u32>("rate"), Some(&30));
        assert_eq!(p.source("rate"), Some(Source::Flag));
        let origins: Vec<&String> = p
            .leaf()
            .get_many::<String>("origin")
            .expect("origin")
            .collect();
        assert_eq!(origins, ["https://c"]);
        // The environment beats the file (a variable only this test uses).
        std::env::set_var("PIER_OPS_UNIT_TEST_RATE", "40");
        let p = parse(cmd(), argv(&[])).expect("parse");
        std::env::remove_var("PIER_OPS_UNIT_TEST_RATE");
        assert_eq!(p.leaf().get_one::<u32>("rate"), Some(&40));
        assert_eq!(p.source("rate"), Some(Source::Env));
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://pier:hunter2@db:5432/pier"),
            "postgres://pier:<redacted>@db:5432/pier"
        );
        assert_eq!(redact_url("sqlite:/x/pier.db"), "sqlite:/x/pier.db");
        assert_eq!(
            redact_url("postgres://pier@db/pier"),
            "postgres://pier@db/pier"
        );
    }
}
