//! One field of a JSON body read straight from its text: the members and items off the path are
//! skipped (validated, not built), and only the value found becomes a `Value`.
//!
//! An InProcess processor that reads `json(request.body).model` needs a few bytes of a body of
//! kilobytes; building the whole tree for it cost more than the rest of the processor. The result
//! is what [`super::body::get`] finds in the parsed tree: a repeated key counts with its last
//! value, as `serde_json::Value` keeps it.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sluice_config::ir::PathStep;
use sluice_llm::json::BorrowedStr;

/// The value at `steps` in `body`, if there is one; an error when `body` is not JSON. (Strings
/// off the path are checked as JSON strings, but a lone UTF-16 surrogate escape in one is not
/// refused the way building it would refuse it: nothing reads it.)
pub fn field(body: &str, steps: &[PathStep]) -> Result<Option<Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let found = At(steps).deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// Reads the value at the remaining steps of the path (`None` when the JSON does not have it).
struct At<'p>(&'p [PathStep]);

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        match self.0 {
            [] => serde::Deserialize::deserialize(d).map(Some),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    // A scalar where the path goes on: the field is not there.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (index, rest) = match self.0.split_first() {
            Some((PathStep::Index(i), rest)) => (Some(*i), rest),
            _ => (None, &[][..]),
        };
        let mut found = None;
        let mut at = 0;
        loop {
            if Some(at) == index {
                match seq.next_element_seed(At(rest))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            at += 1;
        }
        Ok(found)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (name, rest) = match self.0.split_first() {
            Some((PathStep::Member(m), rest)) => (Some(m.as_str()), rest),
            _ => (None, &[][..]),
        };
        let mut found = None;
        while let Some(BorrowedStr(key)) = map.next_key()? {
            if Some(&*key) == name {
                // A repeated key: its last value is the one that counts.
                found = map.next_value_seed(At(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_config::ir::JsonPath;

    use super::*;
    use crate::pipeline::body::get;

    fn both(body: &str, path: &str) -> (Option<Value>, Option<Value>) {
        let path = JsonPath::parse(path).expect("a valid path");
        let tree: Value = serde_json::from_str(body).expect("JSON");
        (
            field(body, &path.steps).expect("JSON"),
            get(&tree, &path).cloned(),
        )
    }

    #[test]
    fn finds_what_the_tree_finds() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [1, {"x": null}]}],
            "metadata": {"tenant": {"id": 7, "tags": ["a", "b"]}},
            "n": 1.5,
            "esc\"aped": true,
        })
        .to_string();
        for path in [
            "$.model",
            "$.messages",
            "$.messages[0].content",
            "$.messages[1].content[1]",
            "$.messages[1].content[1].x",
            "$.messages[5]",
            "$.metadata.tenant",
            "$.metadata.tenant.tags[1]",
            "$.metadata.tenant.id.deeper",
            "$.model.deeper",
            "$.n",
            "$.missing",
            "$.messages.role",
            "$.metadata[0]",
            "$['esc\"aped']",
        ] {
            let (read, built) = both(&body, path);
            assert_eq!(read, built, "{path}");
        }
        assert_eq!(both(&body, "$.model").0, Some(json!("gpt-4o")));
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value() {
        for (body, path) in [
            (r#"{"model":"decoy","model":"real"}"#, "$.model"),
            (r#"{"a":{"b":1},"a":{"c":2}}"#, "$.a.b"),
            (r#"{"a":{"b":1},"a":{"c":2}}"#, "$.a.c"),
            (r#"{"a":{"b":1},"a":7}"#, "$.a.b"),
            (r#"{"a":7,"a":{"b":1}}"#, "$.a.b"),
        ] {
            let (read, built) = both(body, path);
            assert_eq!(read, built, "{path} in {body}");
        }
        assert_eq!(
            both(r#"{"model":"decoy","model":"real"}"#, "$.model").0,
            Some(json!("real"))
        );
    }

    #[test]
    fn escaped_keys_match_what_they_decode_to() {
        let (read, built) = both(r#"{"mod\u0065l":"m"}"#, "$.model");
        assert_eq!(read, Some(json!("m")));
        assert_eq!(read, built);
    }

    #[test]
    fn what_is_not_json_is_an_error_even_off_the_path() {
        let path = JsonPath::parse("$.model").expect("a valid path");
        for bad in [
            r#"{"model":"m","rest":[1,}"#,
            r#"{"model":"m"} trailing"#,
            r#"{"model":"m","x":"bad \q escape"}"#,
            r#"{"model":"m""#,
        ] {
            assert!(field(bad, &path.steps).is_err(), "{bad}");
        }
    }
}
