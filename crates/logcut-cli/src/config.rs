//! `--config FILE`: the options of `write` and `run` from a TOML file.
//!
//! Every key is named after its flag (`max_size` for `--max-size`) and
//! takes the same values, as the flag's text (sizes and durations as human
//! strings such as `"64MiB"` or `"15m"`; a size may also be a plain
//! integer). A flag given on the command line wins over the file; the file
//! wins over the defaults. An unknown key is an error, so a typo is never
//! ignored. A relative `dir` is taken from the working directory, exactly
//! as the flag's value would be.
//!
//! ```toml
//! dir = "/var/log/prog"
//! max_size = "64MiB"
//! interval = "1d"
//! tz = "Europe/Berlin"
//! ```
//!
//! With `route_field`, lines are routed to per-tenant logs under strategy
//! groups: each `[groups.NAME]` table takes the options of one log (the
//! top-level ones are its defaults), `[[routes]]` map field values to a
//! group (first match wins), and `default_group` takes the rest.
//! `root_max_total` and `root_min_free` are a budget across every tenant's
//! log; a group's `priority` (0 by default) says whose segments go first
//! (the lowest's).
//!
//! ```toml
//! dir = "/var/log/svc"
//! route_field = "tenant"
//! default_group = "standard"
//! root_max_total = "50GiB"
//!
//! [groups.premium]
//! interval = "1h"
//! max_age = "90d"
//! priority = 10
//!
//! [groups.standard]
//! interval = "1d"
//! max_age = "7d"
//!
//! [[routes]]
//! match = "plan=premium"
//! group = "premium"
//! ```
//!
//! To add a key: a field in [`ConfigFile`] and a line in [`apply`] naming
//! the flag's field and its parser.

use std::{
    fmt,
    ops::Range,
    path::{Path, PathBuf},
};

use anyhow::Result;
use clap::{ArgMatches, parser::ValueSource};
use serde::Deserialize;
use toml::Spanned;

use crate::{UsageError, write::WriteArgs};

/// The contents of a config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    dir: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    max_size: Option<Spanned<Text>>,
    interval: Option<Spanned<Text>>,
    tz: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    max_line: Option<Spanned<Text>>,
    fsync: Option<Spanned<Text>>,
    metrics: Option<Spanned<String>>,
    grace: Option<Spanned<Text>>,
    shutdown_timeout: Option<Spanned<Text>>,
    trigger: Option<Spanned<String>>,
    compress: Option<Spanned<String>>,
    compress_level: Option<Spanned<Text>>,
    index: Option<Spanned<String>>,
    keep: Option<Spanned<Text>>,
    max_age: Option<Spanned<Text>>,
    max_total: Option<Spanned<Text>>,
    min_free: Option<Spanned<Text>>,
    shared: Option<Spanned<bool>>,
    /// `run` only.
    stderr_name: Option<Spanned<String>>,
    route_field: Option<Spanned<String>>,
    max_open: Option<Spanned<Text>>,
    root_max_total: Option<Spanned<Text>>,
    root_min_free: Option<Spanned<Text>>,
    ship: Option<Spanned<String>>,
    ship_endpoint: Option<Spanned<String>>,
    ship_region: Option<Spanned<String>>,
    ship_path_style: Option<Spanned<bool>>,
    ship_template: Option<Spanned<String>>,
    default_group: Option<Spanned<String>>,
    groups: Option<std::collections::BTreeMap<String, Spanned<GroupFile>>>,
    routes: Option<Vec<Spanned<RouteFile>>>,
}

/// A `[groups.NAME]` table: the options of each log of the group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    max_size: Option<Spanned<Text>>,
    interval: Option<Spanned<Text>>,
    tz: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    fsync: Option<Spanned<Text>>,
    compress: Option<Spanned<String>>,
    compress_level: Option<Spanned<Text>>,
    index: Option<Spanned<String>>,
    keep: Option<Spanned<Text>>,
    max_age: Option<Spanned<Text>>,
    max_total: Option<Spanned<Text>>,
    min_free: Option<Spanned<Text>>,
    /// The group's priority for the root's budget (`root_max_total`): the
    /// lowest loses its segments first.
    priority: Option<Spanned<u32>>,
}

/// A `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    group: Spanned<String>,
}

/// The routing part of a config file: each group's options, and the table.
#[derive(Debug)]
pub(crate) struct Routes {
    pub(crate) groups: Vec<(String, WriteArgs)>,
    /// Each group's `priority` for the root's budget, where given.
    pub(crate) priorities: Vec<(String, u32)>,
    pub(crate) table: logcut::RoutingTable,
}

impl Routes {
    /// Which routing keys there are, for an error message.
    pub(crate) fn what(&self) -> &'static str {
        "[groups] or [[routes]]"
    }
}

/// A value written as a string or, for convenience, a bare integer (a size
/// in bytes).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a string such as \"64MiB\" or \"15m\", or an integer"
)]
enum Text {
    Str(String),
    Int(u64),
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Text::Str(s) => f.write_str(s),
            Text::Int(n) => write!(f, "{n}"),
        }
    }
}

/// A config file read into memory, for error messages that point into it.
#[derive(Debug)]
pub(crate) struct Loaded {
    path: PathBuf,
    text: String,
    file: ConfigFile,
}

/// Reads and parses `path`. Every error is one line naming the file and,
/// where it applies, the line.
pub(crate) fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(", line {}", line_of(&text, s.start)))
            .unwrap_or_default();
        // toml's messages can span lines; the first says what is wrong.
        let what = e.message().lines().next().unwrap_or("").trim();
        UsageError(format!("bad config file {}{at}: {what}", path.display()))
    })?;
    Ok(Loaded {
        path: path.to_path_buf(),
        text,
        file,
    })
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl Loaded {
    /// A usage error about the value of `key` at `span`.
    fn bad(&self, key: &str, span: Range<usize>, msg: &str) -> UsageError {
        UsageError(format!(
            "bad config file {}, line {}: {key}: {msg}",
            self.path.display(),
            line_of(&self.text, span.start)
        ))
    }
}

/// Applies the config file `args.config` names, if any, to the options of
/// `write` (and, with `stderr_name`, of `run`): each key fills in its option
/// unless the option's flag is in `matches`.
pub(crate) fn apply(
    args: &mut WriteArgs,
    stderr_name: Option<&mut Option<String>>,
    matches: &ArgMatches,
) -> Result<Option<Routes>> {
    let Some(path) = args.config.clone() else {
        return Ok(None);
    };
    let cfg = load(&path)?;
    let given = |id: &str| matches!(matches.value_source(id), Some(ValueSource::CommandLine));
    // Parses the key's value with the flag's own parser, unless the flag
    // was given.
    macro_rules! layer {
        ($key:ident, $parse:expr, $set:expr) => {
            if let Some(v) = &cfg.file.$key {
                if !given(stringify!($key)) {
                    let parsed = $parse(&v.get_ref().to_string())
                        .map_err(|m: String| cfg.bad(stringify!($key), v.span(), &m))?;
                    #[allow(clippy::redundant_closure_call)]
                    $set(parsed);
                }
            }
        };
    }
    let ok = |s: &String| Ok::<_, String>(s.clone());
    // A path cannot hold a NUL byte (the flag's value never does).
    let path = |s: &String| {
        if s.contains('\0') {
            Err("the path contains a NUL byte".to_string())
        } else {
            Ok(s.clone())
        }
    };
    layer!(dir, path, |v: String| args.dir = Some(PathBuf::from(v)));
    layer!(name, ok, |v| args.name = v);
    layer!(max_size, crate::write::size_or_none, |v| args.max_size = v);
    layer!(interval, crate::write::interval, |v| args.interval =
        Some(v));
    layer!(tz, ok, |v| args.tz = Some(v));
    layer!(mode, crate::write::mode, |v| args.mode = v);
    layer!(max_line, crate::write::positive_size, |v| args.max_line = v);
    layer!(fsync, crate::write::fsync, |v| args.fsync = v);
    layer!(metrics, crate::write::socket_addr, |v| args.metrics =
        Some(v));
    layer!(grace, crate::write::duration, |v| args.grace = v);
    layer!(shutdown_timeout, crate::write::duration, |v| args
        .shutdown_timeout =
        v);
    layer!(trigger, path, |v| args.trigger = Some(v));
    layer!(compress, crate::write::compress, |v| args.compress = v);
    layer!(compress_level, crate::write::level, |v| args
        .compress_level =
        Some(v));
    layer!(index, |s: &String| crate::write::index_fields(s), |v| {
        args.index = Some(v)
    });
    layer!(keep, crate::write::keep, |v| args.keep = Some(v));
    layer!(max_age, crate::write::positive_duration, |v| args.max_age =
        Some(v));
    layer!(max_total, crate::write::positive_size, |v| args.max_total =
        Some(v));
    layer!(min_free, crate::write::positive_size, |v| args.min_free =
        Some(v));
    layer!(shared, crate::write::boolean, |v| args.shared = v);
    layer!(route_field, ok, |v| args.route_field = Some(v));
    layer!(max_open, crate::write::keep, |v| args.max_open = v);
    layer!(root_max_total, crate::write::positive_size, |v| args
        .root_max_total =
        Some(v));
    layer!(root_min_free, crate::write::positive_size, |v| args
        .root_min_free =
        Some(v));
    layer!(ship, ok, |v| args.ship = Some(v));
    layer!(ship_endpoint, ok, |v| args.s3.ship_endpoint = Some(v));
    layer!(ship_region, ok, |v| args.s3.ship_region = Some(v));
    layer!(ship_path_style, crate::write::boolean, |v| args
        .s3
        .ship_path_style =
        v);
    layer!(ship_template, ok, |v| args.s3.ship_template = Some(v));
    match (&cfg.file.stderr_name, stderr_name) {
        (Some(v), Some(slot)) => {
            if !given("stderr_name") {
                *slot = Some(v.get_ref().clone());
            }
        }
        (Some(v), None) => {
            return Err(cfg
                .bad(
                    "stderr_name",
                    v.span(),
                    "applies to `logcut run` only; remove it or use this file with run",
                )
                .into());
        }
        (None, _) => {}
    }
    routes(&cfg, args)
}

/// The groups and routes of the file, each group's options layered over
/// `args` (the file's top level and the flags); `None` if it has neither.
fn routes(cfg: &Loaded, args: &WriteArgs) -> Result<Option<Routes>> {
    let f = &cfg.file;
    if f.groups.is_none() && f.routes.is_none() && f.default_group.is_none() {
        return Ok(None);
    }
    let mut groups = Vec::new();
    let mut priorities = Vec::new();
    for (name, g) in f.groups.iter().flatten() {
        let mut a = args.clone();
        group_options(cfg, name, g.get_ref(), &mut a)?;
        groups.push((name.clone(), a));
        if let Some(p) = &g.get_ref().priority {
            priorities.push((name.clone(), *p.get_ref()));
        }
    }
    let default = match &f.default_group {
        Some(d) => d.get_ref().clone(),
        None if groups.is_empty() => "default".to_string(),
        None => {
            return Err(UsageError(format!(
                "bad config file {}: default_group names the group of the lines no route matches",
                cfg.path.display()
            ))
            .into());
        }
    };
    if groups.is_empty() {
        groups.push((default.clone(), args.clone()));
    }
    let mut table = logcut::RoutingTable::new(default);
    for r in f.routes.iter().flatten() {
        let r = r.get_ref();
        table = table
            .route(r.pattern.get_ref(), r.group.get_ref().clone())
            .map_err(|e| cfg.bad("match", r.pattern.span(), &crate::write::config_message(&e)))?;
    }
    Ok(Some(Routes {
        groups,
        priorities,
        table,
    }))
}

/// Layers a `[groups.NAME]` table over `args`.
fn group_options(cfg: &Loaded, name: &str, g: &GroupFile, args: &mut WriteArgs) -> Result<()> {
    macro_rules! key {
        ($key:ident, $parse:expr, $set:expr) => {
            if let Some(v) = &g.$key {
                let parsed = $parse(&v.get_ref().to_string()).map_err(|m: String| {
                    cfg.bad(&format!("groups.{name}.{}", stringify!($key)), v.span(), &m)
                })?;
                #[allow(clippy::redundant_closure_call)]
                $set(parsed);
            }
        };
    }
    let ok = |s: &String| Ok::<_, String>(s.clone());
    key!(max_size, crate::write::size_or_none, |v| args.max_size = v);
    key!(interval, crate::write::interval, |v| args.interval =
        Some(v));
    key!(tz, ok, |v| args.tz = Some(v));
    key!(mode, crate::write::mode, |v| args.mode = v);
    key!(fsync, crate::write::fsync, |v| args.fsync = v);
    key!(compress, crate::write::compress, |v| args.compress = v);
    key!(compress_level, crate::write::level, |v| args
        .compress_level =
        Some(v));
    key!(index, |s: &String| crate::write::index_fields(s), |v| {
        args.index = Some(v)
    });
    key!(keep, crate::write::keep, |v| args.keep = Some(v));
    key!(max_age, crate::write::positive_duration, |v| args.max_age =
        Some(v));
    key!(max_total, crate::write::positive_size, |v| args.max_total =
        Some(v));
    key!(min_free, crate::write::positive_size, |v| args.min_free =
        Some(v));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<ConfigFile, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn every_key_parses_and_sizes_may_be_integers() {
        let c = parse(
            "dir = \"/tmp/x\"\nname = \"web\"\nmax_size = 4096\ninterval = \"15m\"\n\
             tz = \"UTC\"\nmode = \"direct\"\nmax_line = \"4KiB\"\nfsync = \"never\"\n\
             metrics = \"127.0.0.1:9184\"\ngrace = \"2s\"\nshutdown_timeout = \"30s\"\n\
             stderr_name = \"err\"\n\
             index = \"trace_id,user\"\nroot_max_total = \"1GiB\"\nroot_min_free = 4096\n\
             ship = \"s3://b/p\"\nship_endpoint = \"http://127.0.0.1:9000\"\n\
             ship_region = \"eu-west-1\"\nship_path_style = true\nship_template = \"{file}\"\n",
        )
        .unwrap();
        assert_eq!(c.max_size.unwrap().get_ref().to_string(), "4096");
        assert_eq!(c.grace.unwrap().get_ref().to_string(), "2s");
        assert_eq!(c.shutdown_timeout.unwrap().get_ref().to_string(), "30s");
        assert_eq!(c.ship.unwrap().get_ref(), "s3://b/p");
        assert!(*c.ship_path_style.unwrap().get_ref());
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = parse("dir = \"x\"\nmax_sise = \"1M\"\n").unwrap_err();
        assert!(e.message().contains("max_sise"), "{}", e.message());
        assert_eq!(
            line_of("dir = \"x\"\nmax_sise = \"1M\"\n", e.span().unwrap().start),
            2
        );
    }

    #[test]
    fn the_help_of_config_names_every_key() {
        // toml lists the keys it knows when it meets an unknown one.
        let e = parse("no_such_key = 1\n").unwrap_err();
        let known = e.message().split("expected one of").nth(1).unwrap();
        let keys: Vec<&str> = known.split('`').skip(1).step_by(2).collect();
        assert!(keys.contains(&"shared") && keys.len() >= 18, "{keys:?}");
        let cmd = <crate::Cli as clap::CommandFactory>::command();
        let help = cmd
            .find_subcommand("write")
            .unwrap()
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .unwrap()
            .get_help()
            .unwrap()
            .to_string();
        let words: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for k in keys {
            assert!(words.contains(&k), "--config's help lacks {k}: {help}");
        }
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    proptest::proptest! {
        /// Any text as a config file: parsed, or refused with a line that
        /// exists; never a panic.
        #[test]
        fn any_config_text_parses_or_is_refused_without_panic(text in "[a-z_ =\"0-9\n\\[\\]{}.,#-]{0,120}") {
            if let Err(e) = parse(&text) {
                let line = e.span().map_or(1, |s| line_of(&text, s.start));
                proptest::prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            }
        }
    }
}
