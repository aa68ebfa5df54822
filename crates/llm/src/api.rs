//! The client-facing APIs: which operation a request path names, and in which dialect errors and
//! responses must come back.

/// The API family a client speaks; errors and translated responses come back in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAI,
    Anthropic,
}

/// An inference operation, as named by the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST …/chat/completions`
    ChatCompletions,
    /// `POST …/completions` (legacy text completions)
    Completions,
    /// `POST …/embeddings`
    Embeddings,
    /// `POST …/responses`
    Responses,
    /// `GET …/models`
    Models,
    /// `POST /v1/messages` (Anthropic)
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic)
    CountTokens,
}

impl Operation {
    /// Every operation, for tests and tables that cover them all.
    pub const ALL: [Operation; 7] = [
        Operation::ChatCompletions,
        Operation::Completions,
        Operation::Embeddings,
        Operation::Responses,
        Operation::Models,
        Operation::Messages,
        Operation::CountTokens,
    ];

    /// The operation a path names. Matching is on the path's end, so prefixes (`/openai/v1/…`,
    /// `/v1/…`) work; the method is checked by the caller.
    pub fn from_path(path: &str) -> Option<Operation> {
        let path = path.strip_suffix('/').unwrap_or(path);
        // Longest suffixes first: `/chat/completions` also ends with `/completions`.
        const TABLE: &[(&str, Operation)] = &[
            ("/v1/messages/count_tokens", Operation::CountTokens),
            ("/v1/messages", Operation::Messages),
            ("/chat/completions", Operation::ChatCompletions),
            ("/completions", Operation::Completions),
            ("/embeddings", Operation::Embeddings),
            ("/responses", Operation::Responses),
            ("/models", Operation::Models),
        ];
        TABLE
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map(|(_, op)| *op)
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Operation::Messages | Operation::CountTokens => Dialect::Anthropic,
            _ => Dialect::OpenAI,
        }
    }

    /// `gen_ai.operation.name` (OpenTelemetry GenAI semantic conventions).
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::ChatCompletions | Operation::Messages | Operation::Responses => "chat",
            Operation::Completions => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::Models => "models",
            Operation::CountTokens => "count_tokens",
        }
    }

    /// Whether the request carries a JSON body with a `model` (every operation but `Models`).
    pub fn has_body(self) -> bool {
        self != Operation::Models
    }

    /// Whether the operation can stream its response (SSE).
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Operation::ChatCompletions
                | Operation::Completions
                | Operation::Responses
                | Operation::Messages
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_operations() {
        let op = Operation::from_path;
        assert_eq!(op("/v1/chat/completions"), Some(Operation::ChatCompletions));
        assert_eq!(
            op("/openai/v1/chat/completions/"),
            Some(Operation::ChatCompletions)
        );
        assert_eq!(op("/v1/completions"), Some(Operation::Completions));
        assert_eq!(op("/v1/embeddings"), Some(Operation::Embeddings));
        assert_eq!(op("/v1/responses"), Some(Operation::Responses));
        assert_eq!(op("/v1/models"), Some(Operation::Models));
        assert_eq!(op("/v1/messages"), Some(Operation::Messages));
        assert_eq!(
            op("/v1/messages/count_tokens"),
            Some(Operation::CountTokens)
        );
        assert_eq!(op("/v1/other"), None);
        assert_eq!(op("/messages"), None);
    }
}
