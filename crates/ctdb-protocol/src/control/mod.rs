//! Typed control payloads.
