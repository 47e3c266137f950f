//! The JSON Schemas in `schema/`, generated from the report's own types
//! ([`super::json`]) and their doc comments, so the documented shape is
//! the shape the code writes and reads. A test fails when a committed
//! schema differs from what this produces; `SIZEGUARD_REGEN_SCHEMA=1
//! cargo test --lib report::schema` rewrites them.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::json::{CheckView, MeasureView};
use crate::budget::rules::{Figure, Rule};

/// The schema of `sizeguard measure --format json`.
pub fn measure() -> Value {
    generate::<MeasureView>()
}

/// The schema of `sizeguard check --format json`.
pub fn check() -> Value {
    generate::<CheckView>()
}

/// The schema of what `T` serializes to: every field a document carries is
/// required (null stands for unknown), and an object has no keys but its
/// own.
fn generate<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    close_objects(&mut value);
    value
}

/// Reading a report tolerates keys it does not know (older and newer
/// writers) and some it lacks (older writers), so the types neither deny
/// unknown fields nor lack serde defaults; what is written has exactly the
/// keys the schema lists, every one of them.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.remove("default");
            for (key, sub) in map.iter_mut() {
                match (key.as_str(), sub) {
                    // Maps of names to schemas: a property may be called
                    // `default`.
                    ("properties" | "$defs", Value::Object(named)) => {
                        named.values_mut().for_each(close_objects)
                    }
                    (_, sub) => close_objects(sub),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// A platform's growth: one integer per figure growth rules name, null
/// without a baseline.
pub(super) fn growth(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Figure::ALL.into_iter().map(Figure::name).collect();
    let properties: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), serde_json::json!({"type": "integer"})))
        .collect();
    json_schema!({
        "type": ["object", "null"],
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    })
}

/// Rules are written by their stable ids.
impl JsonSchema for Rule {
    fn schema_name() -> Cow<'static, str> {
        "rule".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let ids: Vec<&str> = Rule::ALL.into_iter().map(Rule::id).collect();
        json_schema!({ "type": "string", "enum": ids })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn committed(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("schema")
            .join(name)
    }

    /// The committed schemas are what the code produces: a change to the
    /// report's types (or their doc comments) changes the schema in the
    /// same commit.
    #[test]
    fn committed_schemas_are_generated_from_the_types() {
        let regen = std::env::var_os("SIZEGUARD_REGEN_SCHEMA").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, schema) in [
            ("measure.schema.json", super::measure()),
            ("check.schema.json", super::check()),
        ] {
            let path = committed(name);
            let mut text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
            text.push('\n');
            if regen {
                std::fs::write(&path, &text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if on_disk != text {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "{} differ from what the report's types produce; run \
             `SIZEGUARD_REGEN_SCHEMA=1 cargo test --lib report::schema` and commit the result",
            stale.join(" and ")
        );
    }
}
