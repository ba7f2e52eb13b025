//! Masking of request data before it leaves countersign (git, review text, logs, responses).
//!
//! Until the masking engine lands this is deliberately blunt: every payload value is replaced by
//! the name of its JSON type, keeping the structure a reviewer needs and none of the data.

use serde_json::{Map, Value};

/// Replaces every scalar in `value` with its JSON type name, keeping objects and arrays.
pub fn type_skeleton(value: &Value) -> Value {
    match value {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("boolean".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(items) => Value::Array(items.iter().map(type_skeleton).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), type_skeleton(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_structure_drops_values() {
        let raw = json!({"email": "ann@example.com", "limit": 5, "tags": ["a", true], "x": null});
        let masked = type_skeleton(&raw);
        assert_eq!(
            masked,
            json!({"email": "string", "limit": "number", "tags": ["string", "boolean"], "x": "null"})
        );
        assert!(!masked.to_string().contains("ann@example.com"));
    }
}
