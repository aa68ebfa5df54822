//! CEL expressions (Common Expression Language), compiled once when configuration loads and
//! evaluated on requests against a small set of named variables.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};

/// The standard environment, built once: building it registers every standard function.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled boolean expression.
pub struct Expression {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

/// Why an expression could not be evaluated to a boolean. Rules treat it as "no match" for
/// Allow and as a match for Deny, so an error never grants access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expression {expression:?}: {message}")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

impl Expression {
    /// Compiles `source`, checking that it reads only the variables in `allowed` (so a typo is a
    /// configuration error, not a rule that silently never matches).
    pub fn compile(source: &str, allowed: &[&str]) -> Result<Expression, String> {
        let program = ENV
            .compile(source)
            .map_err(|e| format!("invalid CEL expression: {e}"))?;
        let refs = program.references();
        let mut unknown: Vec<&str> = refs
            .variables()
            .into_iter()
            .filter(|v| !allowed.contains(v))
            .collect();
        unknown.sort_unstable();
        if !unknown.is_empty() {
            return Err(format!(
                "unknown variable{} {} (available: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                allowed.join(", ")
            ));
        }
        Ok(Expression {
            source: source.to_string(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `vars` bound by name; the result must be a boolean.
    pub fn eval_bool(&self, vars: &[(&str, serde_json::Value)]) -> Result<bool, EvalError> {
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in vars {
            let value = cel::to_value(value).map_err(|e| self.error(e.to_string()))?;
            ctx.add_variable_from_value(*name, value);
        }
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => {
                Err(self.error(format!("evaluated to {:?}, not a boolean", other.type_of())))
            }
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Evaluates against `bindings` (built once per request and shared by every expression
    /// of a processor) and returns the result as JSON.
    pub fn eval_json(&self, bindings: &Bindings) -> Result<serde_json::Value, EvalError> {
        let value = self
            .program
            .execute(&bindings.ctx)
            .map_err(|e| self.error(e.to_string()))?;
        value
            .json()
            .map_err(|e| self.error(format!("result is not JSON: {e:?}")))
    }

    fn error(&self, message: String) -> EvalError {
        EvalError {
            expression: self.source.clone(),
            message,
        }
    }
}

/// Variables bound once for several evaluations, with the `json(string)` function that parses
/// a JSON text (a body) into a value.
pub struct Bindings {
    ctx: Context<'static, 'static>,
}

impl Bindings {
    pub fn new(vars: &[(&str, serde_json::Value)]) -> Result<Bindings, String> {
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, json_to_cel(value));
        }
        ctx.add_function("json", parse_json)
            .map_err(|e| format!("{e:?}"))?;
        Ok(Bindings { ctx })
    }
}

fn parse_json(text: Arc<String>) -> Result<Value, cel::ExecutionError> {
    let parsed: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| cel::ExecutionError::function_error("json", format!("invalid JSON: {e}")))?;
    Ok(json_to_cel(&parsed))
}

/// JSON as CEL sees it: integers that fit are `int` (so `n * 2` works), other numbers `double`.
pub fn json_to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::List(Arc::new(items.iter().map(json_to_cel).collect())),
        J::Object(map) => {
            let map: std::collections::HashMap<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect();
            Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VARS: &[&str] = &["identity", "request", "model"];

    #[test]
    fn evaluates_over_json_variables() {
        let e = Expression::compile(
            "identity.tenant == 'acme' && model.startsWith('gpt-') && 'admins' in identity.groups",
            VARS,
        )
        .expect("compiles");
        let id = json!({"tenant": "acme", "groups": ["admins", "dev"]});
        assert!(e
            .eval_bool(&[("identity", id.clone()), ("model", json!("gpt-4o"))])
            .expect("evaluates"));
        assert!(!e
            .eval_bool(&[("identity", id), ("model", json!("claude-3"))])
            .expect("evaluates"));
    }

    #[test]
    fn unknown_variables_and_syntax_errors_are_compile_errors() {
        let err = Expression::compile("identty.tenant == 'a'", VARS).expect_err("typo");
        assert!(err.contains("unknown variable identty"), "{err}");
        let err = Expression::compile("identity.tenant ==", VARS).expect_err("syntax");
        assert!(err.contains("invalid CEL expression"), "{err}");
    }

    #[test]
    fn non_boolean_and_missing_fields_are_eval_errors() {
        let e = Expression::compile("identity.tenant", VARS).expect("compiles");
        let err = e
            .eval_bool(&[("identity", json!({"tenant": "a"}))])
            .expect_err("string result");
        assert!(err.message.contains("not a boolean"), "{err}");
        let e = Expression::compile("identity.nope == 'x'", VARS).expect("compiles");
        assert!(e.eval_bool(&[("identity", json!({}))]).is_err());
    }

    #[test]
    fn evaluates_values_with_json_of_a_body() {
        let b = Bindings::new(&[(
            "request",
            json!({"headers": {"x-tenant": "acme"}, "body": r#"{"model":"gpt-4o","n":2}"#}),
        )])
        .expect("bindings");
        let model =
            Expression::compile("json(request.body).model", &["request"]).expect("compiles");
        assert_eq!(model.eval_json(&b).expect("evaluates"), json!("gpt-4o"));
        let n = Expression::compile("json(request.body).n * 2", &["request"]).expect("compiles");
        assert_eq!(n.eval_json(&b).expect("evaluates"), json!(4));
        let t = Expression::compile("request.headers['x-tenant'] + '-x'", &["request"])
            .expect("compiles");
        assert_eq!(t.eval_json(&b).expect("evaluates"), json!("acme-x"));
        let bad = Bindings::new(&[("request", json!({"body": "not json"}))]).expect("bindings");
        let err = model.eval_json(&bad).expect_err("invalid JSON");
        assert!(err.message.contains("invalid JSON"), "{err}");
    }
}
