//! The InProcess processor: CEL expressions over the request (or response) driving header and
//! body mutations. Every value is computed before anything is applied, so a failing expression
//! leaves the exchange untouched (a FailOpen skip then really is a skip).

use serde_json::{json, Value};
use sluice_config::ir::{Mutations, ValueExpr};
use sluice_policy::expr::Bindings;

use super::body::{self, BodyBuf};
use super::{header_value, headers_json, Failure, RequestPayload};

/// What expressions read: built once per processor run, only as far as they need.
struct Inputs<'a> {
    headers: &'a http::HeaderMap,
    body: Option<&'a mut BodyBuf>,
    /// Lazily built CEL bindings (only for expressions that are not fast paths).
    bindings: Option<Bindings>,
}

/// Builds the CEL variables, on first need.
type VarsFn<'v> = dyn Fn(&mut Inputs<'_>) -> Result<Vec<(&'static str, Value)>, Failure> + 'v;

pub fn on_request(m: &Mutations, req: &mut RequestPayload<'_>) -> Result<(), Failure> {
    let mut headers_out = Vec::with_capacity(m.set_headers.len());
    let mut fields_out = Vec::with_capacity(m.set_body_fields.len());
    {
        let mut inputs = Inputs {
            headers: req.headers,
            body: req.body.as_deref_mut(),
            bindings: None,
        };
        let vars = |inputs: &mut Inputs<'_>| -> Result<Vec<(&'static str, Value)>, Failure> {
            let body = match inputs.body.as_deref_mut() {
                Some(b) => Value::String(b.text()),
                None => Value::Null,
            };
            Ok(vec![(
                "request",
                json!({
                    "method": req.method.as_str(),
                    "path": req.path,
                    "headers": headers_json(inputs.headers),
                    "body": body,
                }),
            )])
        };
        for (name, expr) in &m.set_headers {
            let v = eval(expr, &mut inputs, &vars)?;
            headers_out.push((name, header_value(&v)?));
        }
        for (path, expr) in &m.set_body_fields {
            fields_out.push((path, eval(expr, &mut inputs, &vars)?));
        }
    }
    for (name, value) in headers_out {
        req.headers.insert(name.clone(), value);
        if !req.set_headers.contains(name) {
            req.set_headers.push(name.clone());
        }
    }
    for name in &m.remove_headers {
        req.headers.remove(name);
        req.set_headers.retain(|n| n != name);
    }
    if !fields_out.is_empty() || !m.remove_body_fields.is_empty() {
        let buf = req
            .body
            .as_deref_mut()
            .ok_or_else(|| Failure::Error("the request has no body to change".into()))?;
        // Check the body is JSON before changing anything.
        buf.json()?;
        let root = buf.json_mut()?;
        for (path, value) in fields_out {
            body::set(root, path, value)?;
        }
        for path in &m.remove_body_fields {
            body::remove(root, path);
        }
    }
    Ok(())
}

fn eval(expr: &ValueExpr, inputs: &mut Inputs<'_>, vars: &VarsFn<'_>) -> Result<Value, Failure> {
    match expr {
        ValueExpr::Header(name) => inputs
            .headers
            .get(name)
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .ok_or_else(|| Failure::Error(format!("the request has no header {name}"))),
        ValueExpr::BodyField(path) => {
            let buf = inputs
                .body
                .as_deref_mut()
                .ok_or_else(|| Failure::Error("the request has no body".into()))?;
            buf.field(path)?
                .filter(|v| !v.is_null())
                .ok_or_else(|| Failure::Error(format!("the body has no field {}", path.source)))
        }
        ValueExpr::Cel { expr, .. } => {
            if inputs.bindings.is_none() {
                let v = vars(inputs)?;
                inputs.bindings = Some(Bindings::new(&v).map_err(Failure::Error)?);
            }
            let b = inputs
                .bindings
                .as_ref()
                .ok_or_else(|| Failure::Error("no bindings".into()))?;
            expr.eval_json(b).map_err(|e| Failure::Error(e.to_string()))
        }
    }
}

/// Response-side mutations: headers only on a streamed answer; body fields too on a whole one.
pub fn on_response(
    m: &Mutations,
    request: &Value,
    status: http::StatusCode,
    headers: &mut http::HeaderMap,
    body: Option<&mut BodyBuf>,
) -> Result<(), Failure> {
    let mut body = body;
    let mut bindings: Option<Bindings> = None;
    let mut eval_resp = |expr: &ValueExpr,
                         headers: &http::HeaderMap,
                         body: &mut Option<&mut BodyBuf>|
     -> Result<Value, Failure> {
        match expr {
            ValueExpr::BodyField(path) => {
                let buf = body.as_deref_mut().ok_or_else(|| {
                    Failure::Error("a streamed answer has no body to read".into())
                })?;
                buf.field(path)?.filter(|v| !v.is_null()).ok_or_else(|| {
                    Failure::Error(format!("the answer has no field {}", path.source))
                })
            }
            // Request headers in a response expression: read from the request's snapshot.
            ValueExpr::Header(name) => request["headers"]
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| Failure::Error(format!("the request had no header {name}"))),
            ValueExpr::Cel { expr, .. } => {
                if bindings.is_none() {
                    let text = match body.as_deref_mut() {
                        Some(b) => Value::String(b.text()),
                        None => Value::Null,
                    };
                    let response = json!({
                        "status": status.as_u16(),
                        "headers": headers_json(headers),
                        "body": text,
                    });
                    bindings = Some(
                        Bindings::new(&[("request", request.clone()), ("response", response)])
                            .map_err(Failure::Error)?,
                    );
                }
                let b = bindings
                    .as_ref()
                    .ok_or_else(|| Failure::Error("no bindings".into()))?;
                expr.eval_json(b).map_err(|e| Failure::Error(e.to_string()))
            }
        }
    };
    let mut headers_out = Vec::new();
    for (name, expr) in &m.set_headers {
        let v = eval_resp(expr, headers, &mut body)?;
        headers_out.push((name, header_value(&v)?));
    }
    let mut fields_out = Vec::new();
    for (path, expr) in &m.set_body_fields {
        fields_out.push((path, eval_resp(expr, headers, &mut body)?));
    }
    for (name, value) in headers_out {
        headers.insert(name.clone(), value);
    }
    for name in &m.remove_headers {
        headers.remove(name);
    }
    if !fields_out.is_empty() || !m.remove_body_fields.is_empty() {
        let Some(buf) = body else {
            return Err(Failure::Error(
                "body fields of a streamed answer cannot be changed".into(),
            ));
        };
        buf.json()?;
        let root = buf.json_mut()?;
        for (path, value) in fields_out {
            body::set(root, path, value)?;
        }
        for path in &m.remove_body_fields {
            body::remove(root, path);
        }
    }
    Ok(())
}
