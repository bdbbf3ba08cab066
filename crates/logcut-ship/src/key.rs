//! Object keys: a template over the segment's names, rendered with only
//! characters a key and a manifest line can hold.

use std::path::Path;

/// The default template: `{prefix}/{host}/{path}/{date}/{file}`.
pub const DEFAULT_TEMPLATE: &str = "{prefix}/{host}/{path}/{date}/{file}";

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 7] = ["prefix", "host", "path", "log", "date", "file", "seq"];

/// What a key is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) host: &'a str,
    /// The log directory, relative to the base (`group/tenant` for a
    /// router's logs).
    pub(crate) path: &'a str,
    pub(crate) log: &'a str,
    /// `YYYY/MM/DD` of the segment's start, UTC.
    pub(crate) date: &'a str,
    pub(crate) file: &'a str,
    pub(crate) seq: u64,
}

/// Checks `template`: known placeholders only, and `{file}` or `{seq}` in
/// it (so that two segments never share a key).
pub(crate) fn check(template: &str) -> Result<(), String> {
    let mut rest = template;
    let mut unique = false;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{template:?}: a '{{' without its '}}'"));
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{template:?}: unknown placeholder {{{name}}}; use {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        unique |= name == "file" || name == "seq";
        rest = &rest[open + close + 1..];
    }
    if !unique {
        return Err(format!(
            "{template:?}: needs {{file}} or {{seq}}, or two segments would share a key"
        ));
    }
    Ok(())
}

/// The key for `parts`: the template filled in, every character outside
/// `[A-Za-z0-9._/-]` replaced by `_`, empty path segments dropped.
pub(crate) fn render(template: &str, p: &Parts<'_>) -> String {
    let seq = p.seq.to_string();
    let mut out = template.to_string();
    for (name, value) in [
        ("prefix", p.prefix),
        ("host", p.host),
        ("path", p.path),
        ("log", p.log),
        ("date", p.date),
        ("file", p.file),
        ("seq", seq.as_str()),
    ] {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    let clean: String = out
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // No empty, `.` or `..` segment: S3 would keep them, but they read as
    // paths.
    clean
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect::<Vec<_>>()
        .join("/")
}

/// The part of every key of one log that does not depend on the segment:
/// the rendered template up to the first placeholder that does.
pub(crate) fn log_prefix(template: &str, p: &Parts<'_>) -> String {
    let cut = ["{date}", "{file}", "{seq}"]
        .iter()
        .filter_map(|ph| template.find(ph))
        .min()
        .unwrap_or(template.len());
    let head = &template[..cut];
    let head = head.rsplit_once('/').map_or("", |(h, _)| h);
    let r = render(head, p);
    if r.is_empty() { r } else { format!("{r}/") }
}

/// `dir` relative to `base` if it lies under it, else its last component.
pub(crate) fn rel_path(dir: &Path, base: Option<&Path>) -> String {
    if let Some(rel) = base.and_then(|b| dir.strip_prefix(b).ok()) {
        let s: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if !s.is_empty() {
            return s.join("/");
        }
    }
    dir.file_name()
        .map_or_else(|| "log".to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(path: &'a str, host: &'a str) -> Parts<'a> {
        Parts {
            prefix: "logs",
            host,
            path,
            log: "app",
            date: "2026/12/03",
            file: "app.2026-12-03T10-00-00.000Z.000042.log.zst",
            seq: 42,
        }
    }

    #[test]
    fn keys_are_rendered_with_safe_characters_only() {
        let k = render(DEFAULT_TEMPLATE, &parts("std/acme", "web-1"));
        assert_eq!(
            k,
            "logs/web-1/std/acme/2026/12/03/app.2026-12-03T10-00-00.000Z.000042.log.zst"
        );
        let k = render(DEFAULT_TEMPLATE, &parts("my app", "we b\n~1"));
        assert_eq!(
            k,
            "logs/we_b__1/my_app/2026/12/03/app.2026-12-03T10-00-00.000Z.000042.log.zst"
        );
        let k = render("{prefix}/{path}/{seq}", &parts("../..", "h"));
        assert_eq!(k, "logs/42");
        let mut p = parts("x", "h");
        p.prefix = "";
        assert_eq!(
            render("{prefix}/{log}/{file}", &p),
            "app/app.2026-12-03T10-00-00.000Z.000042.log.zst"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check(DEFAULT_TEMPLATE).is_ok());
        assert!(check("{prefix}/{seq}").is_ok());
        assert!(check("{prefix}/{host}").is_err(), "not unique");
        assert!(check("{prefix}/{nope}/{file}").is_err());
        assert!(check("{prefix/{file}").is_err());
    }

    #[test]
    fn a_logs_prefix_stops_before_the_segments_parts() {
        let p = parts("std/acme", "web-1");
        assert_eq!(log_prefix(DEFAULT_TEMPLATE, &p), "logs/web-1/std/acme/");
        assert_eq!(log_prefix("{file}", &p), "");
        assert_eq!(
            rel_path(Path::new("/r/std/acme"), Some(Path::new("/r"))),
            "std/acme"
        );
        assert_eq!(rel_path(Path::new("/var/log/app"), None), "app");
    }
}
