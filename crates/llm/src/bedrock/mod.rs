//! AWS Bedrock: the Converse API ↔ hub translation, and the AWS machinery it needs without the
//! AWS SDK: event-stream framing for streamed responses and Signature Version 4 request signing.

pub mod converse;
pub mod eventstream;
pub mod sigv4;

pub use converse::{
    converse_path, converse_request, converse_response, error_message, ConverseStream,
};
