//! JSON Schema (as OpenAI clients write tool parameters and response formats) → the OpenAPI-3.0
//! subset Gemini takes as a `Schema`.
//!
//! Gemini parses schemas strictly: an unknown key such as `additionalProperties` or `$schema` is a
//! 400 for the whole request. So this keeps only the keys the Gemini API's `Schema` documents
//! (Vertex AI accepts a superset, so what passes here passes there), and rewrites the common JSON
//! Schema constructs Gemini lacks: local `$ref`s and `allOf` are inlined, `oneOf` becomes `anyOf`,
//! `type: [T, "null"]` becomes `type: T, nullable: true`, a string `const` becomes a one-value
//! `enum`.

use serde_json::{json, Map, Value};

use crate::TranslateError;

/// Deeper than this is taken for a recursive `$ref`, which Gemini's schemas cannot express.
const MAX_DEPTH: usize = 32;

/// Keys copied as they are.
const PLAIN_KEYS: &[&str] = &[
    "description",
    "title",
    "nullable",
    "required",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "example",
    "propertyOrdering",
];

/// The only `format`s Gemini accepts (for strings, numbers and integers); any other is a 400.
const FORMATS: &[&str] = &["date-time", "enum", "float", "double", "int32", "int64"];

/// `schema` made acceptable to Gemini. `$ref`s resolve against `schema` itself (`#/$defs/…`,
/// `#/definitions/…`).
pub(crate) fn to_gemini(schema: &Value) -> Result<Value, TranslateError> {
    convert(schema, schema, 0)
}

fn convert(schema: &Value, root: &Value, depth: usize) -> Result<Value, TranslateError> {
    if depth > MAX_DEPTH {
        return Err(TranslateError::Unsupported(
            "a recursive or too deeply nested JSON schema".to_string(),
        ));
    }
    // Boolean schemas (`true`: anything) have no Gemini form; the empty schema is the nearest.
    let Some(obj) = schema.as_object() else {
        return Ok(json!({}));
    };
    let flat = flatten(obj, root, depth)?;
    let mut out = Map::new();
    for (key, value) in &flat {
        convert_key(key, value, root, depth, &mut out)?;
    }
    Ok(Value::Object(out))
}

/// One key of a schema into `out`; keys Gemini does not know are left out.
fn convert_key(
    key: &str,
    value: &Value,
    root: &Value,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match key {
        "properties" => {
            if let Some(props) = value.as_object() {
                // The keys here are property names, not schema keywords: kept whatever they are.
                let mut converted = Map::new();
                for (name, prop) in props {
                    converted.insert(name.clone(), convert(prop, root, depth + 1)?);
                }
                out.insert(key.to_string(), Value::Object(converted));
            }
        }
        "items" => {
            // Tuple-form `items` (an array of schemas) has no Gemini form; the first is closest.
            let item = value.as_array().and_then(|a| a.first()).unwrap_or(value);
            out.insert(key.to_string(), convert(item, root, depth + 1)?);
        }
        "anyOf" | "oneOf" => {
            if let Some(options) = value.as_array() {
                let converted = options
                    .iter()
                    .map(|o| convert(o, root, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("anyOf".to_string(), Value::Array(converted));
            }
        }
        "type" => convert_type(value, out),
        // Gemini's enums are lists of strings; a numeric enum would be refused, so it is dropped
        // (falls through to the last arm) and the type alone constrains the value.
        "enum"
            if value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)) =>
        {
            out.insert(key.to_string(), value.clone());
        }
        "const" if value.is_string() && !out.contains_key("enum") => {
            out.insert("enum".to_string(), json!([value]));
        }
        // Other formats (`uri`, `email`, …) are refused by Gemini: dropped the same way.
        "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
            out.insert(key.to_string(), value.clone());
        }
        _ if PLAIN_KEYS.contains(&key) => {
            out.insert(key.to_string(), value.clone());
        }
        _ => {} // $schema, $id, $defs, additionalProperties, examples, …: unknown to Gemini.
    }
    Ok(())
}

/// `type: ["string", "null"]` → `type: "string", nullable: true`; several non-null types become
/// an `anyOf` of one type each.
fn convert_type(value: &Value, out: &mut Map<String, Value>) {
    let Some(types) = value.as_array() else {
        out.insert("type".to_string(), value.clone());
        return;
    };
    let non_null: Vec<&Value> = types
        .iter()
        .filter(|t| t.as_str() != Some("null"))
        .collect();
    if non_null.len() < types.len() {
        out.insert("nullable".to_string(), Value::Bool(true));
    }
    match non_null.as_slice() {
        [] => {}
        [one] => {
            out.insert("type".to_string(), (*one).clone());
        }
        many => {
            let options = many.iter().map(|t| json!({"type": t})).collect();
            out.insert("anyOf".to_string(), Value::Array(options));
        }
    }
}

/// The schema with its `$ref` and `allOf` members merged in. The schema's own keys win over what
/// a reference brings (a `description` next to a `$ref` describes this use of it); `properties`
/// and `required` of `allOf` members are unions.
fn flatten(
    obj: &Map<String, Value>,
    root: &Value,
    depth: usize,
) -> Result<Map<String, Value>, TranslateError> {
    let mut flat: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| *k != "$ref" && *k != "allOf")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(reference) = obj.get("$ref") {
        let target = resolve(reference, root)?;
        merge(&mut flat, &flatten_value(target, root, depth + 1)?);
    }
    if let Some(members) = obj.get("allOf").and_then(Value::as_array) {
        for member in members {
            merge(&mut flat, &flatten_value(member, root, depth + 1)?);
        }
    }
    Ok(flat)
}

fn flatten_value(
    schema: &Value,
    root: &Value,
    depth: usize,
) -> Result<Map<String, Value>, TranslateError> {
    if depth > MAX_DEPTH {
        return Err(TranslateError::Unsupported(
            "a recursive or too deeply nested JSON schema".to_string(),
        ));
    }
    match schema.as_object() {
        Some(obj) => flatten(obj, root, depth),
        None => Ok(Map::new()),
    }
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(key)) {
            ("properties", Some(Value::Object(mine))) => {
                if let Some(theirs) = value.as_object() {
                    for (name, prop) in theirs {
                        mine.entry(name.clone()).or_insert_with(|| prop.clone());
                    }
                }
            }
            ("required", Some(Value::Array(mine))) => {
                for name in value.as_array().into_iter().flatten() {
                    if !mine.contains(name) {
                        mine.push(name.clone());
                    }
                }
            }
            (_, Some(_)) => {}
            (_, None) => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The schema a local reference (`#/$defs/Name`, `#/definitions/Name`, any JSON pointer into the
/// document) points at. Remote references would need fetching: not supported.
fn resolve<'a>(reference: &Value, root: &'a Value) -> Result<&'a Value, TranslateError> {
    let pointer = reference
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .ok_or_else(|| TranslateError::Unsupported(format!("JSON schema reference {reference}")))?;
    root.pointer(pointer).ok_or_else(|| {
        TranslateError::Request(format!("JSON schema reference {reference} points nowhere"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_stripped_recursively_but_property_names_kept() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": "string", "examples": ["x"]},
                "tags": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": false,
                              "properties": {"k": {"type": "string", "format": "uri"}}}
                },
                "when": {"type": "string", "format": "date-time"}
            },
            "required": ["tags"]
        });
        assert_eq!(
            to_gemini(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string"},
                    "tags": {"type": "array",
                             "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                    "when": {"type": "string", "format": "date-time"}
                },
                "required": ["tags"]
            })
        );
    }

    #[test]
    fn refs_and_all_of_are_inlined() {
        // What Pydantic emits for a nested model.
        let schema = json!({
            "$defs": {
                "Unit": {"type": "string", "enum": ["c", "f"], "title": "Unit"},
                "Place": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}
            },
            "type": "object",
            "properties": {
                "unit": {"$ref": "#/$defs/Unit", "description": "temperature unit"},
                "place": {"allOf": [{"$ref": "#/$defs/Place"}], "description": "where"}
            }
        });
        assert_eq!(
            to_gemini(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "unit": {"type": "string", "enum": ["c", "f"], "title": "Unit",
                             "description": "temperature unit"},
                    "place": {"type": "object", "description": "where",
                              "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }
            })
        );
    }

    #[test]
    fn nullable_types_one_of_and_const() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"oneOf": [{"type": "integer"}, {"type": "string", "const": "auto"}]},
                "c": {"type": ["integer", "string"]},
                "d": {"type": "integer", "enum": [1, 2]}
            }
        });
        assert_eq!(
            to_gemini(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": "string", "nullable": true},
                    "b": {"anyOf": [{"type": "integer"}, {"type": "string", "enum": ["auto"]}]},
                    "c": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "d": {"type": "integer"}
                }
            })
        );
    }

    #[test]
    fn recursive_and_remote_refs_are_refused() {
        let recursive = json!({
            "$defs": {"Node": {"type": "object",
                               "properties": {"child": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        assert!(matches!(
            to_gemini(&recursive),
            Err(TranslateError::Unsupported(_))
        ));
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(matches!(
            to_gemini(&remote),
            Err(TranslateError::Unsupported(_))
        ));
        let dangling = json!({"$ref": "#/$defs/Missing"});
        assert!(matches!(
            to_gemini(&dangling),
            Err(TranslateError::Request(_))
        ));
    }

    #[test]
    fn boolean_schemas_and_tuple_items() {
        assert_eq!(to_gemini(&json!(true)).unwrap(), json!({}));
        assert_eq!(
            to_gemini(&json!({"type": "array", "items": [{"type": "number"}, {"type": "string"}]}))
                .unwrap(),
            json!({"type": "array", "items": {"type": "number"}})
        );
    }
}
