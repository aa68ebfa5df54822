//! A buffered body shared by the processors of a phase: the bytes, and the JSON tree built from
//! them the first time a processor asks. Re-serialised only when something changed the tree.

use bytes::Bytes;
use serde_json::Value;
use sluice_config::ir::{JsonPath, PathStep};

use super::Failure;

#[derive(Debug, Default)]
pub struct BodyBuf {
    bytes: Bytes,
    json: Option<Value>,
    /// The tree differs from `bytes`.
    json_dirty: bool,
    /// Something changed the body since it was read.
    changed: bool,
}

impl BodyBuf {
    pub fn new(bytes: Bytes) -> BodyBuf {
        BodyBuf {
            bytes,
            ..BodyBuf::default()
        }
    }

    /// A body whose JSON tree was already built (by the inference intake, or an earlier
    /// phase): `tree` must be `bytes` parsed.
    pub fn with_tree(bytes: Bytes, tree: Option<serde_json::Map<String, Value>>) -> BodyBuf {
        BodyBuf {
            bytes,
            json: tree.map(Value::Object),
            ..BodyBuf::default()
        }
    }

    /// The tree, when one was built and still is the bytes (nothing changed it), for the next
    /// reader.
    pub fn into_tree(self) -> Option<serde_json::Map<String, Value>> {
        match self.json {
            Some(Value::Object(map)) if !self.changed => Some(map),
            _ => None,
        }
    }

    /// Moves the buffer out (to a task that may never give it back), leaving its current bytes
    /// and whether they changed: what is left is the same body.
    pub fn take_leaving_bytes(&mut self) -> BodyBuf {
        let bytes = self.bytes();
        let left = BodyBuf {
            bytes,
            changed: self.changed,
            ..BodyBuf::default()
        };
        std::mem::replace(self, left)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The current bytes (serialising the tree if a processor changed it).
    pub fn bytes(&mut self) -> Bytes {
        if self.json_dirty {
            if let Some(v) = &self.json {
                self.bytes = Bytes::from(v.to_string());
            }
            self.json_dirty = false;
        }
        self.bytes.clone()
    }

    /// Replaces the body (a processor rewrote it as bytes).
    pub fn set_bytes(&mut self, bytes: Bytes) {
        if bytes != self.bytes || self.json_dirty {
            self.changed = true;
        }
        self.bytes = bytes;
        self.json = None;
        self.json_dirty = false;
    }

    /// The body as JSON, parsed on first use.
    pub fn json(&mut self) -> Result<&Value, Failure> {
        self.parse()?;
        Ok(self.json.get_or_insert(Value::Null))
    }

    /// The body as JSON, to change in place: marks it changed.
    pub fn json_mut(&mut self) -> Result<&mut Value, Failure> {
        self.parse()?;
        self.json_dirty = true;
        self.changed = true;
        Ok(self.json.get_or_insert(Value::Null))
    }

    /// Lets `edit` change the tree in place; it says whether it changed anything, so a pass
    /// that only reads leaves the body as it came.
    pub fn json_edit<R>(
        &mut self,
        edit: impl FnOnce(&mut Value) -> (R, bool),
    ) -> Result<R, Failure> {
        self.parse()?;
        let root = self.json.get_or_insert(Value::Null);
        let (r, changed) = edit(root);
        if changed {
            self.json_dirty = true;
            self.changed = true;
        }
        Ok(r)
    }

    /// The value at `path` (`None` when the body has none). Reads it straight from the bytes
    /// while no tree was built: a processor that needs one field does not pay for the whole tree.
    pub fn field(&mut self, path: &JsonPath) -> Result<Option<Value>, Failure> {
        if self.json.is_none() {
            if let Ok(text) = std::str::from_utf8(&self.bytes) {
                return super::lookup::field(text, &path.steps).map_err(not_json);
            }
            // Not UTF-8: the tree's parse says why.
        }
        Ok(get(self.json()?, path).cloned())
    }

    /// The body as text, when no tree was built (a reader can then read the bytes without one)
    /// and it is UTF-8.
    pub fn untouched_text(&self) -> Option<&str> {
        if self.json.is_some() {
            return None;
        }
        std::str::from_utf8(&self.bytes).ok()
    }

    fn parse(&mut self) -> Result<(), Failure> {
        if self.json.is_none() {
            let v: Value = serde_json::from_slice(&self.bytes).map_err(not_json)?;
            self.json = Some(v);
        }
        Ok(())
    }

    /// The body as text (for expressions that read `request.body`).
    pub fn text(&mut self) -> String {
        let bytes = self.bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn not_json(e: serde_json::Error) -> Failure {
    Failure::Error(format!("the body is not JSON: {e}"))
}

/// The value at `path`, if there is one.
pub fn get<'a>(root: &'a Value, path: &JsonPath) -> Option<&'a Value> {
    let mut at = root;
    for step in &path.steps {
        at = match step {
            PathStep::Member(m) => at.get(m.as_str())?,
            PathStep::Index(i) => at.get(*i)?,
        };
    }
    Some(at)
}

/// Sets the value at `path`, creating missing objects on the way.
pub fn set(root: &mut Value, path: &JsonPath, value: Value) -> Result<(), Failure> {
    let Some((last, parents)) = path.steps.split_last() else {
        return Err(Failure::Error("empty path".into()));
    };
    let mut at = root;
    for step in parents {
        at = match step {
            PathStep::Member(m) => {
                let obj = at.as_object_mut().ok_or_else(|| not_object(path))?;
                obj.entry(m.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            PathStep::Index(i) => at.get_mut(*i).ok_or_else(|| {
                Failure::Error(format!("{}: index {i} is out of range", path.source))
            })?,
        };
    }
    match last {
        PathStep::Member(m) => {
            at.as_object_mut()
                .ok_or_else(|| not_object(path))?
                .insert(m.clone(), value);
        }
        PathStep::Index(i) => {
            let slot = at.get_mut(*i).ok_or_else(|| {
                Failure::Error(format!("{}: index {i} is out of range", path.source))
            })?;
            *slot = value;
        }
    }
    Ok(())
}

/// Removes the value at `path`; a path that is already absent is not an error.
pub fn remove(root: &mut Value, path: &JsonPath) {
    let Some((last, parents)) = path.steps.split_last() else {
        return;
    };
    let mut at = root;
    for step in parents {
        let next = match step {
            PathStep::Member(m) => at.get_mut(m.as_str()),
            PathStep::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match (last, at) {
        (PathStep::Member(m), Value::Object(o)) => {
            o.shift_remove(m.as_str());
        }
        (PathStep::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

fn not_object(path: &JsonPath) -> Failure {
    Failure::Error(format!("{}: a parent is not an object", path.source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(s: &str) -> JsonPath {
        JsonPath::parse(s).expect("path")
    }

    #[test]
    fn set_get_remove() {
        let mut v = json!({"a": {"b": 1}, "list": [1, 2, 3]});
        set(&mut v, &path("$.a.c.d"), json!("x")).expect("set");
        assert_eq!(get(&v, &path("$.a.c.d")), Some(&json!("x")));
        set(&mut v, &path("$.list[1]"), json!(9)).expect("set index");
        assert_eq!(v["list"], json!([1, 9, 3]));
        assert!(set(&mut v, &path("$.list[7]"), json!(0)).is_err());
        assert!(
            set(&mut v, &path("$.a.b.c"), json!(0)).is_err(),
            "1 is not an object"
        );
        remove(&mut v, &path("$.a.b"));
        remove(&mut v, &path("$.nope.x"));
        assert_eq!(v["a"], json!({"c": {"d": "x"}}));
    }

    #[test]
    fn a_lent_tree_is_used_and_handed_on_only_while_unchanged() {
        let raw = Bytes::from_static(br#"{"model":"m","x":1}"#);
        // A tree that differs from the bytes shows which one a read used.
        let tree = json!({"model": "from-tree"}).as_object().cloned();
        let mut b = BodyBuf::with_tree(raw.clone(), tree);
        assert_eq!(
            b.json().expect("json")["model"],
            "from-tree",
            "not parsed again"
        );
        assert_eq!(b.bytes(), raw);
        assert!(b.into_tree().is_some(), "an unchanged tree goes on");

        let mut b = BodyBuf::with_tree(raw.clone(), None);
        b.json_edit(|v| {
            v["x"] = json!(2);
            ((), true)
        })
        .expect("edit");
        assert!(
            b.into_tree().is_none(),
            "a changed tree is not the body as received"
        );
    }

    #[test]
    fn taking_a_buffer_leaves_the_same_body() {
        let mut b = BodyBuf::new(Bytes::from_static(br#"{"x":1}"#));
        b.json_edit(|v| {
            v["x"] = json!(2);
            ((), true)
        })
        .expect("edit");
        let taken = b.take_leaving_bytes();
        assert!(b.changed(), "the change is remembered by what is left");
        assert_eq!(&b.bytes()[..], br#"{"x":2}"#);
        assert!(taken.changed());
    }

    #[test]
    fn body_is_reserialised_only_when_changed() {
        let raw = Bytes::from_static(br#"{"model":"m",  "x":1}"#);
        let mut b = BodyBuf::new(raw.clone());
        assert_eq!(b.json().expect("json")["model"], "m");
        assert_eq!(b.bytes(), raw, "reading leaves the bytes as they came");
        assert!(!b.changed());
        b.json_mut().expect("json")["x"] = json!(2);
        assert!(b.changed());
        assert_eq!(b.bytes(), Bytes::from_static(br#"{"model":"m","x":2}"#));
    }
}
