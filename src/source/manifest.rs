//! Reading Service, EndpointSlice and Node objects from YAML or JSON text.
//!
//! A file may hold several YAML documents (`---`) and `kind: List` documents. Objects
//! of other kinds are passed over (so a directory of mixed manifests works). Errors
//! name the line, counted from 1 in the whole file.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// One object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum ManifestObject {
    /// A core/v1 Service.
    Service(Box<Service>),
    /// A discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// A core/v1 Node.
    Node(Box<Node>),
}

/// Why a manifest could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ManifestError {
    /// The line (from 1) where the problem is, or where its document starts.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads every Service, EndpointSlice and Node in `text`.
pub fn parse_manifests(text: &str) -> Result<Vec<ManifestObject>, ManifestError> {
    let mut objects = Vec::new();
    for (first_line, doc) in split_documents(text) {
        let value: Value = serde_yaml_ng::from_str(doc).map_err(|e| located(&e, first_line))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "List" | "ServiceList" | "EndpointSliceList" | "NodeList" => {
                let items = value.get("items").and_then(Value::as_sequence).cloned().unwrap_or_default();
                for (i, item) in items.into_iter().enumerate() {
                    let item_kind = item.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
                    let item_kind =
                        if item_kind.is_empty() { kind.trim_end_matches("List").to_owned() } else { item_kind };
                    let object = typed_from_value(&item_kind, item).map_err(|message| ManifestError {
                        line: first_line,
                        message: format!("items[{i}] of the {kind} starting here: {message}"),
                    })?;
                    objects.extend(object);
                }
            }
            "" => {
                return Err(ManifestError { line: first_line, message: "a document without `kind`".into() });
            }
            _ => objects.extend(typed_from_str(kind, doc).map_err(|e| located(&e, first_line))?),
        }
    }
    Ok(objects)
}

fn typed_from_str(kind: &str, doc: &str) -> Result<Option<ManifestObject>, serde_yaml_ng::Error> {
    Ok(match kind {
        "Service" => Some(ManifestObject::Service(Box::new(serde_yaml_ng::from_str(doc)?))),
        "EndpointSlice" => Some(ManifestObject::EndpointSlice(Box::new(serde_yaml_ng::from_str(doc)?))),
        "Node" => Some(ManifestObject::Node(Box::new(serde_yaml_ng::from_str(doc)?))),
        _ => None,
    })
}

fn typed_from_value(kind: &str, value: Value) -> Result<Option<ManifestObject>, String> {
    fn convert<T: DeserializeOwned>(value: Value) -> Result<Box<T>, String> {
        serde_yaml_ng::from_value(value).map(Box::new).map_err(|e| e.to_string())
    }
    Ok(match kind {
        "Service" => Some(ManifestObject::Service(convert(value)?)),
        "EndpointSlice" => Some(ManifestObject::EndpointSlice(convert(value)?)),
        "Node" => Some(ManifestObject::Node(convert(value)?)),
        _ => None,
    })
}

fn located(e: &serde_yaml_ng::Error, first_line: usize) -> ManifestError {
    let line = e.location().map_or(first_line, |l| first_line + l.line().saturating_sub(1));
    let mut message = e.to_string();
    // The parser's own "at line N column M" counts within the document: drop it.
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    ManifestError { line, message }
}

/// The YAML documents of `text`, each with the file line (from 1) it starts on.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  clusterIP: 10.96.0.1\n---\n# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a-1\naddressType: IPv4\nendpoints: []\n";

    #[test]
    fn multi_document_yaml_passes_over_other_kinds() {
        let objects = parse_manifests(TWO).unwrap();
        assert_eq!(objects.len(), 2);
        assert!(matches!(objects[0], ManifestObject::Service(_)));
        assert!(matches!(objects[1], ManifestObject::EndpointSlice(_)));
    }

    #[test]
    fn lists_and_json_are_read() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}]}"#;
        let objects = parse_manifests(json).unwrap();
        assert_eq!(objects.len(), 2);
        assert!(matches!(objects[1], ManifestObject::Node(_)));
    }

    #[test]
    fn errors_name_the_line_in_the_whole_file() {
        // Line 16 has a string where an integer port belongs.
        let bad = format!(
            "{TWO}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\nspec:\n  ports:\n  - port: eighty\n"
        );
        let err = parse_manifests(&bad).unwrap_err();
        assert_eq!(err.line, 27, "{err}");
        assert!(err.message.contains("invalid"), "{err}");

        let syntax = "apiVersion: v1\nkind: Service\nmetadata: [\n";
        let err = parse_manifests(syntax).unwrap_err();
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn a_document_without_kind_is_an_error() {
        let err = parse_manifests("---\nmetadata:\n  name: x\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
