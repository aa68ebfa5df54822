//! A JSON value borrowed from a body's bytes, for readers that keep nothing of it: token
//! counting and the guardrails' text walk ([`crate::texts::borrowed`]).
//!
//! Such a reader sees every text once, so building a `serde_json::Map` (an owned `String` per
//! key and per string, a hash index per object) is mostly wasted work. [`Json`] holds strings as slices of the body (owned only when the JSON
//! escapes them) and objects as plain vectors of entries.
//!
//! It must read exactly what a `serde_json::Value` of the same body holds, so it keeps that
//! value's semantics: objects keep their keys in order, and a repeated key keeps its first
//! position with its last value (as `serde_json::Map` with `preserve_order` does); numbers are
//! `serde_json::Number`s, so [`Json`]'s JSON text (what counting a non-string value encodes)
//! is byte for byte the text `Value::to_string` writes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};

/// A JSON value whose strings borrow from the source where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object: entries in first-seen order, each key once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
}

/// Objects with more entries than this find repeated keys through a hash index; smaller ones by
/// comparing keys, which is cheaper than hashing them.
const LINEAR_DEDUP: usize = 16;

impl<'a> Object<'a> {
    /// The object of `entries` in order, a repeated key keeping its first position and its last
    /// value.
    fn from_entries(mut entries: Vec<(Cow<'a, str>, Json<'a>)>) -> Object<'a> {
        if entries.len() > 1 {
            dedup(&mut entries);
        }
        Object { entries }
    }

    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json<'a>> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Removes repeated keys in place: the first position keeps the last value.
fn dedup(entries: &mut Vec<(Cow<'_, str>, Json<'_>)>) {
    let repeated = if entries.len() <= LINEAR_DEDUP {
        (1..entries.len()).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        !entries.iter().all(|(k, _)| seen.insert(&**k))
    };
    if !repeated {
        return;
    }
    let mut first: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    let mut kept: Vec<(Cow<'_, str>, Json<'_>)> = Vec::with_capacity(entries.len());
    for (k, v) in entries.drain(..) {
        match first.get(&*k) {
            Some(&i) => kept[i].1 = v,
            None => {
                first.insert(k.to_string(), kept.len());
                kept.push((k, v));
            }
        }
    }
    *entries = kept;
}

impl<'a> Json<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The value at `key` if this is an object that has it (as `Value::get` with a string).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.as_object().and_then(|o| o.get(key))
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The compact JSON text `serde_json::Value::to_string` writes for the same value.
    pub fn to_json(&self) -> String {
        // Keys are strings and numbers finite, so serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A view of an owned value, borrowing its strings.
    pub fn of_value(v: &'a Value) -> Json<'a> {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(a) => Json::Array(a.iter().map(Json::of_value).collect()),
            Value::Object(m) => Json::Object(Object::of_map(m)),
        }
    }
}

impl<'a> Object<'a> {
    /// A view of an owned map (whose keys are already unique), borrowing its strings.
    pub fn of_map(m: &'a Map<String, Value>) -> Object<'a> {
        Object {
            entries: m
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::of_value(v)))
                .collect(),
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(a) => s.collect_seq(a),
            Json::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> de::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

// Mirrors `serde_json::Value`'s visitor, borrowing strings instead of copying them.
impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Json<'de>, E> {
        <Number as de::Deserialize>::deserialize(de::value::I128Deserializer::new(v))
            .map(Json::Number)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Json<'de>, E> {
        <Number as de::Deserialize>::deserialize(de::value::U128Deserializer::new(v))
            .map(Json::Number)
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<BorrowedStr<'de>>()? {
            entries.push((key.0, map.next_value()?));
        }
        Ok(Json::Object(Object::from_entries(entries)))
    }
}

/// A string (an object key, or a field read as a string), borrowed unless escaped. (serde's
/// own `Cow<str>` copies unless the field is marked `borrow`, which `Option`s defeat.)
pub struct BorrowedStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BorrowedStr<'a>, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = BorrowedStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<BorrowedStr<'a>, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<BorrowedStr<'a>, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<BorrowedStr<'a>, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

/// The top-level fields named in `keys` of the JSON object in `raw`, the others validated and
/// skipped without being built. Errors as `serde_json::from_slice::<Map<..>>` would (invalid JSON,
/// not an object).
pub(crate) fn top_level<'a>(raw: &'a [u8], keys: &[&str]) -> serde_json::Result<Object<'a>> {
    let mut d = serde_json::Deserializer::from_slice(raw);
    let object = d.deserialize_map(TopLevel { keys })?;
    d.end()?;
    Ok(object)
}

struct TopLevel<'k> {
    keys: &'k [&'k str],
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut entries = Vec::with_capacity(self.keys.len());
        while let Some(key) = map.next_key::<BorrowedStr<'de>>()? {
            if self.keys.contains(&&*key.0) {
                entries.push((key.0, map.next_value()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Object::from_entries(entries))
    }
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Object<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Object<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json<'_> {
        serde_json::from_str(s).unwrap()
    }

    /// The view writes the JSON text an owned `Value` of the same source writes.
    fn same_text(s: &str) {
        let owned: Value = serde_json::from_str(s).unwrap();
        assert_eq!(parse(s).to_json(), owned.to_string(), "{s}");
        assert_eq!(Json::of_value(&owned).to_json(), owned.to_string(), "{s}");
        assert_eq!(Json::of_value(&owned), parse(s), "{s}");
    }

    #[test]
    fn text_matches_serde_json_values() {
        same_text(r#"{"b": 1, "a": [1.50, -0, 1e3, 12345678901234567890, -9223372036854775808]}"#);
        same_text(r#"{"s": "tab\t \u00e9 \ud83d\ude80 \/ \"q\" \u0000", "n": null, "t": true}"#);
        same_text(r#"[{"z": {}, "y": [], "x": [[]]}, 1E-7, 2.5e+300, 0.1]"#);
        same_text(r#"{"k": 1, "j": 2, "k": 3}"#);
        same_text(r#"{"k\u0041": 1, "kA": 2}"#);
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let Json::Object(o) = parse(r#"{"plain": "abc", "esc": "a\nb"}"#) else {
            panic!("not an object")
        };
        assert!(matches!(
            o.get("plain"),
            Some(Json::String(Cow::Borrowed("abc")))
        ));
        assert!(matches!(o.get("esc"), Some(Json::String(Cow::Owned(s))) if s == "a\nb"));
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let small = parse(r#"{"a": 1, "b": 2, "a": 3}"#);
        let keys: Vec<_> = small.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(small.get("a").and_then(Json::as_u64), Some(3));
        // Past the linear scan: the hash index gives the same answer.
        let mut big: Vec<String> = (0..40).map(|i| format!(r#""k{i}": {i}"#)).collect();
        big.push(r#""k3": "last""#.into());
        let src = format!("{{{}}}", big.join(","));
        let owned: Value = serde_json::from_str(&src).unwrap();
        let view = parse(&src);
        assert_eq!(view.as_object().unwrap().len(), 40);
        assert_eq!(view.get("k3").and_then(Json::as_str), Some("last"));
        assert_eq!(view.to_json(), owned.to_string());
    }

    #[test]
    fn top_level_keeps_only_the_named_fields() {
        let raw = br#"{"model": "m", "messages": [{"role": "user"}], "x": {"deep": [1, 2]}, "messages": []}"#;
        let o = top_level(raw, &["messages"]).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o.get("messages"), Some(&Json::Array(vec![])));
        assert!(top_level(b"[1]", &["messages"]).is_err());
        assert!(top_level(br#"{"messages": [}"#, &["messages"]).is_err());
        assert!(top_level(br#"{"x": [} "#, &["messages"]).is_err());
        assert!(top_level(br#"{} {}"#, &["messages"]).is_err());
    }
}
