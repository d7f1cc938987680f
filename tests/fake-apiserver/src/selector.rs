//! Label and field selectors, parsed the way the Kubernetes API server parses
//! the `labelSelector` and `fieldSelector` query parameters.

use serde_json::Value;
use std::collections::BTreeSet;

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    NotExists(String),
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value`: absent, or present with another value.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, BTreeSet<String>),
    /// `key notin (a,b)`: absent, or present with a value outside the set.
    NotIn(String, BTreeSet<String>),
}

/// A parsed label selector: all terms must match (an empty selector matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    terms: Vec<LabelTerm>,
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses `(a,b,c)` into a set of values.
fn parse_set(s: &str) -> Result<BTreeSet<String>, String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value list, found {s:?}"))?;
    let mut set = BTreeSet::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_value(v) {
            return Err(format!("invalid label value: {v:?}"));
        }
        set.insert(v.to_string());
    }
    Ok(set)
}

fn parse_term(raw: &str) -> Result<LabelTerm, String> {
    let t = raw.trim();
    let key_ok = |k: &str| -> Result<String, String> {
        let k = k.trim();
        if valid_key(k) {
            Ok(k.to_string())
        } else {
            Err(format!("invalid label key {k:?} in selector term {t:?}"))
        }
    };
    let val_ok = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if valid_value(v) {
            Ok(v.to_string())
        } else {
            Err(format!("invalid label value {v:?} in selector term {t:?}"))
        }
    };
    if let Some(k) = t.strip_prefix('!') {
        return Ok(LabelTerm::NotExists(key_ok(k)?));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(LabelTerm::NotEquals(key_ok(k)?, val_ok(v)?));
    }
    if let Some((k, v)) = t.split_once("==") {
        return Ok(LabelTerm::Equals(key_ok(k)?, val_ok(v)?));
    }
    if let Some((k, v)) = t.split_once('=') {
        return Ok(LabelTerm::Equals(key_ok(k)?, val_ok(v)?));
    }
    if let Some((k, rest)) = t.split_once(' ') {
        let rest = rest.trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(LabelTerm::NotIn(key_ok(k)?, parse_set(set)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(LabelTerm::In(key_ok(k)?, parse_set(set)?));
        }
        return Err(format!("unable to parse selector term {t:?}"));
    }
    Ok(LabelTerm::Exists(key_ok(t)?))
}

impl LabelSelector {
    /// Parses a `labelSelector` query value. An empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let terms = split_terms(s).into_iter().map(parse_term).collect::<Result<_, _>>()?;
        Ok(Self { terms })
    }

    /// Whether this selector matches nothing-restricting (selects every object).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object (as JSON) satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.terms.iter().all(|t| match t {
            LabelTerm::Exists(k) => get(k).is_some(),
            LabelTerm::NotExists(k) => get(k).is_none(),
            LabelTerm::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelTerm::In(k, set) => get(k).is_some_and(|x| set.contains(x)),
            LabelTerm::NotIn(k, set) => get(k).is_none_or(|x| !set.contains(x)),
        })
    }
}

/// A parsed field selector; only `metadata.name` and `metadata.namespace` are supported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// `(json pointer, value, negated)` triples.
    terms: Vec<(&'static str, String, bool)>,
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value (`metadata.name=x,metadata.namespace!=y`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, negated) = if let Some((f, v)) = raw.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = raw.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = raw.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid field selector term {raw:?}"));
            };
            let pointer = match field.trim() {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                other => return Err(format!("field label not supported: {other}")),
            };
            terms.push((pointer, value.trim().to_string(), negated));
        }
        Ok(Self { terms })
    }

    /// Adds an exact `metadata.name` requirement (used for watches on a single object path).
    pub fn with_name(mut self, name: &str) -> Self {
        self.terms.push(("/metadata/name", name.to_string(), false));
        self
    }

    /// Whether this selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object (as JSON) satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(ptr, want, negated)| {
            let have = obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
            (have == want) != *negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_terms() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!service.kubernetes.io/service-proxy-name"));
        assert!(m("app=web,tier==fe"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("app in (db, web),tier"));
        assert!(!m("app in (db)"));
        assert!(m("app notin (db)"));
        assert!(m("missing notin (db)"));
        assert!(!m("app notin (web,db)"));
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_terms() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("metadata.name=a"));
        assert!(m("metadata.name==a,metadata.namespace=ns"));
        assert!(!m("metadata.namespace=other"));
        assert!(m("metadata.name!=b"));
        assert!(FieldSelector::parse("spec.foo=bar").is_err());
    }
}
