//! The routing table: which group's policy a record's log follows, from the
//! record's fields. Rules are tried in order and the first whose every
//! condition holds wins; a default group catches the rest.

use crate::Error;

/// One condition of a rule: the field has this value, or any value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Is(String),
    Present,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Every one must hold.
    conds: Vec<(String, Cond)>,
    group: String,
}

/// Maps a record's fields to a strategy group: rules such as
/// `tenant=acme,env=prod` (comma: and), `env=staging` or `tenant=*` (any
/// value, as long as the field is there), first match wins, and a default
/// group for the rest.
///
/// ```
/// let table = logcut::RoutingTable::new("standard")
///     .route("tenant=acme,env=prod", "premium")?
///     .route("env=staging", "staging")?;
/// assert_eq!(table.group_for(&[("tenant", "acme"), ("env", "prod")]), "premium");
/// assert_eq!(table.group_for(&[("tenant", "acme"), ("env", "staging")]), "staging");
/// assert_eq!(table.group_for(&[("tenant", "zeta")]), "standard");
/// # Ok::<(), logcut::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    rules: Vec<Rule>,
    default: String,
}

impl RoutingTable {
    /// A table that sends every record to `default_group`.
    pub fn new(default_group: impl Into<String>) -> RoutingTable {
        RoutingTable {
            rules: Vec::new(),
            default: default_group.into(),
        }
    }

    /// Adds a rule after the others: records whose fields match `pattern`
    /// go to `group`. Fails on a pattern that is not a comma-separated list
    /// of `field=value` or `field=*`.
    pub fn route(mut self, pattern: &str, group: impl Into<String>) -> Result<RoutingTable, Error> {
        let conds = parse(pattern)?;
        self.rules.push(Rule {
            conds,
            group: group.into(),
        });
        Ok(self)
    }

    /// The group for a record with these fields (name, value).
    pub fn group_for(&self, fields: &[(&str, &str)]) -> &str {
        let value = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        self.rules
            .iter()
            .find(|r| {
                r.conds.iter().all(|(name, c)| match (c, value(name)) {
                    (Cond::Is(want), Some(v)) => v == want,
                    (Cond::Present, Some(_)) => true,
                    (_, None) => false,
                })
            })
            .map_or(&self.default, |r| &r.group)
    }

    /// The default group.
    pub fn default_group(&self) -> &str {
        &self.default
    }

    /// Every field the table's rules test (with repeats).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.conds.iter().map(|(n, _)| n.as_str()))
    }

    /// Every group the table names, the default first.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default.as_str()).chain(self.rules.iter().map(|r| r.group.as_str()))
    }
}

/// Parses `field=value,field=*`.
fn parse(pattern: &str) -> Result<Vec<(String, Cond)>, Error> {
    let bad = |why: &str| Error::config("route", format!("pattern {pattern:?}: {why}"));
    let mut conds = Vec::new();
    for part in pattern.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("each condition is field=value or field=*"))?;
        let name = name.trim();
        let value = value.trim();
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !name_ok {
            return Err(bad("a field name is letters, digits, '_' and '.'"));
        }
        if value.is_empty() {
            return Err(bad("an empty value (use * for any value)"));
        }
        let cond = if value == "*" {
            Cond::Present
        } else {
            Cond::Is(value.to_string())
        };
        conds.push((name.to_string(), cond));
    }
    Ok(conds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_whose_every_condition_holds_wins() {
        let t = RoutingTable::new("std")
            .route("tenant=acme,env=prod", "premium")
            .unwrap()
            .route("env=staging", "staging")
            .unwrap()
            .route(" tenant = * ", "tenants")
            .unwrap();
        let g = |f: &[(&str, &str)]| t.group_for(f).to_string();
        assert_eq!(g(&[("env", "prod"), ("tenant", "acme")]), "premium");
        assert_eq!(g(&[("tenant", "acme"), ("env", "staging")]), "staging");
        assert_eq!(g(&[("tenant", "acme")]), "tenants");
        assert_eq!(g(&[("tenant", "acme"), ("env", "dev")]), "tenants");
        assert_eq!(g(&[("env", "dev")]), "std");
        assert_eq!(g(&[]), "std");
        // Values compare exactly.
        assert_eq!(g(&[("tenant", "ACME"), ("env", "prod")]), "tenants");
        let groups: Vec<&str> = t.groups().collect();
        assert_eq!(groups, ["std", "premium", "staging", "tenants"]);
    }

    #[test]
    fn patterns_that_do_not_parse_are_configuration_errors() {
        for bad in [
            "",
            "tenant",
            "=x",
            "tenant=",
            "a b=c",
            "tenant=acme,",
            "x=1,,y=2",
        ] {
            let e = RoutingTable::new("d").route(bad, "g").unwrap_err();
            assert!(e.is_config(), "{bad:?}: {e}");
        }
    }
}
