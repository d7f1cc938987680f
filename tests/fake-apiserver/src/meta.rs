//! Small helpers for reading and writing object metadata as JSON.

use serde_json::{json, Value};

/// Sets `metadata.<field>`, creating `metadata` if needed.
pub(crate) fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"][field] = v;
}

/// The current time as a Kubernetes `Time` JSON value (whole seconds, UTC).
pub(crate) fn now() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::time::{SystemTime, UNIX_EPOCH};
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ts = i64::try_from(secs)
        .ok()
        .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    json!(Time(ts))
}

/// `metadata.<field>` as a string.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}
