//! The six ext_proc phases and the small set the session keeps of those it has sent.

/// One point of an HTTP exchange at which the processor is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `request_headers`.
    RequestHeaders,
    /// `request_body` (one buffered body, or one chunk).
    RequestBody,
    /// `request_trailers`.
    RequestTrailers,
    /// `response_headers`.
    ResponseHeaders,
    /// `response_body` (one buffered body, or one chunk).
    ResponseBody,
    /// `response_trailers`.
    ResponseTrailers,
}

impl Phase {
    /// The protobuf oneof field name, used in error messages so they match Envoy's docs.
    pub fn wire_name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request_headers",
            Phase::RequestBody => "request_body",
            Phase::RequestTrailers => "request_trailers",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
            Phase::ResponseTrailers => "response_trailers",
        }
    }

    /// Whether the phase belongs to the request direction (pseudo-header `:path` may change)
    /// rather than the response direction (`:status` may change).
    pub fn is_request(self) -> bool {
        matches!(
            self,
            Phase::RequestHeaders | Phase::RequestBody | Phase::RequestTrailers
        )
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The phases a session has sent at least once: a reply may only answer one of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PhaseSet(u8);

impl PhaseSet {
    pub(crate) fn insert(&mut self, phase: Phase) {
        self.0 |= phase.bit();
    }

    pub(crate) fn contains(self, phase: Phase) -> bool {
        self.0 & phase.bit() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_set_remembers_only_inserted_phases() {
        let mut set = PhaseSet::default();
        set.insert(Phase::RequestBody);
        set.insert(Phase::ResponseTrailers);
        assert!(set.contains(Phase::RequestBody));
        assert!(set.contains(Phase::ResponseTrailers));
        assert!(!set.contains(Phase::RequestHeaders));
        assert!(!set.contains(Phase::ResponseBody));
    }
}
