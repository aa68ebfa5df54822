//! AWS Bedrock Converse ↔ hub. (Being written.)
