//! The JSON Schemas in `schema/`, generated from the report's own types
//! ([`super::json`]) and their doc comments, so the documented shape is
//! the shape the code writes and reads. `tests/integration/schema.rs`
//! fails when a committed schema differs from what this produces;
//! `SIZEGUARD_REGEN_SCHEMA=1 cargo test --test integration
//! schema::committed` rewrites them.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::history::HistoryView;
use super::json::{CheckView, MeasureView};
use crate::budget::rules::{Figure, Rule};

/// The schema of `sizeguard measure --format json`.
pub fn measure() -> Value {
    generate::<MeasureView>()
}

/// The schema of `sizeguard check --format json`.
pub fn check() -> Value {
    let mut schema = generate::<CheckView>();
    // The history a check carries is the history document's shape; its
    // `$id` would make the references inside it point into that document.
    if let Some(history) = schema
        .pointer_mut("/$defs/HistoryView")
        .and_then(Value::as_object_mut)
    {
        history.remove("$id");
    }
    schema
}

/// The schema of `sizeguard history --format json` and `GET /v1/history`.
pub fn history() -> Value {
    generate::<HistoryView>()
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
