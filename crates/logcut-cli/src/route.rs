//! `logcut write --route-field FIELD`: each line, a JSON object, goes to its
//! tenant's log (`DIR/GROUP/TENANT/`) under the policy of the group the
//! routing table picks from the line's fields. The library's [`Router`]
//! does the routing; this reads the fields.

use std::process::ExitCode;

use anyhow::{Context, Result};
use logcut::{Router, RoutingTable};

use crate::{UsageError, config::Routes, write::WriteArgs};

pub(crate) fn run(args: &WriteArgs, routes: Option<Routes>) -> Result<ExitCode> {
    let Some(field) = args.route_field.clone() else {
        return Err(UsageError("--route-field is missing".into()).into());
    };
    for (given, flag) in [
        (args.metrics.is_some(), "--metrics"),
        (args.trigger.is_some(), "--trigger"),
    ] {
        if given {
            return Err(
                UsageError(format!("{flag} does not work with --route-field (yet)")).into(),
            );
        }
    }
    let root = args.dir()?.to_path_buf();
    let routes = routes.unwrap_or_else(|| Routes {
        groups: vec![("default".to_string(), args.clone())],
        priorities: Vec::new(),
        table: RoutingTable::new("default"),
    });
    let mut names = vec![field.clone()];
    names.extend(routes.table.fields().map(str::to_string));
    names.sort();
    names.dedup();
    let mut b = Router::builder(&root)
        .tenant_field(&field)
        .max_open(usize::try_from(args.max_open).unwrap_or(usize::MAX))
        .routes(routes.table);
    if let Some(n) = args.root_max_total {
        b = b.root_max_total(n);
    }
    if let Some(n) = args.root_min_free {
        b = b.root_min_free(n);
    }
    for (g, p) in routes.priorities {
        b = b.priority(g, p);
    }
    for (name, a) in routes.groups {
        let policy = a.policy()?;
        // The group's options, checked before anything is created.
        if let Err(e) = policy.clone().dir(root.join(&name)).check() {
            return Err(a.build_error(&e, &root, "--name"));
        }
        b = b.group(name, policy);
    }
    let again = b.clone();
    let router = b.build().map_err(|e| {
        UsageError(format!(
            "invalid routing: {}",
            crate::write::config_message(&e)
        ))
    })?;
    crate::write::pump(args, |buf, ends| {
        let mut start = 0;
        for &end in ends {
            let line = &buf[start..end];
            let fields = fields_of(line, &names);
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            router.write_to(&pairs, line)?;
            start = end;
        }
        Ok(())
    })?;
    router.shutdown().context("cannot finish the logs")?;
    // The budget once more, now that every segment is sealed and recorded:
    // a run ends within it, however short.
    if args.root_max_total.is_some() || args.root_min_free.is_some() {
        let last = again.build().context("cannot open the root again")?;
        let res = last.apply_budget();
        last.shutdown().context("cannot finish the logs")?;
        res.context("cannot apply the budget across the tenants' logs")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The values of the fields `names` (dotted paths) in `line`, a JSON
/// object; none if it is not one. Strings as they are, numbers and
/// booleans as JSON writes them; objects, arrays and null count as absent.
fn fields_of(line: &[u8], names: &[String]) -> Vec<(String, String)> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) else {
        return Vec::new();
    };
    lookup_all(&v, names)
}

/// The values of the fields `names` (dotted paths) of the JSON value `v`.
pub(crate) fn lookup_all(v: &serde_json::Value, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| Some((n.clone(), lookup(v, n)?)))
        .collect()
}

fn lookup(v: &serde_json::Value, path: &str) -> Option<String> {
    let mut at = v;
    for part in path.split('.') {
        at = at.as_object()?.get(part)?;
    }
    match at {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::fields_of;

    #[test]
    fn fields_come_from_json_objects_by_dotted_path() {
        let names = ["ctx.tenant".to_string(), "env".to_string(), "n".to_string()];
        let f = fields_of(
            br#"{"ctx":{"tenant":"acme"},"env":"prod","n":7,"msg":"x"}"#,
            &names,
        );
        let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(f, [("ctx.tenant", "acme"), ("env", "prod"), ("n", "7")]);
        assert!(fields_of(b"not json\n", &names).is_empty());
        assert!(fields_of(b"[1,2]\n", &names).is_empty());
        let f = fields_of(b"{\"env\":null,\"ctx\":{\"tenant\":[1]}}\n", &names);
        assert!(f.is_empty(), "{f:?}");
    }
}
