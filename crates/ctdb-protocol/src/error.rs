use thiserror::Error;

/// Why a byte string is not a valid CTDB packet or payload.
///
/// Each way a packet can be malformed has its own variant so that a caller can log
/// exactly what was wrong and decide whether the stream can still be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a field or the packet's own length claims.
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("wrong magic 0x{0:08x} (expected 0x43544442)")]
    BadMagic(u32),
    #[error("unsupported protocol version {0} (expected 1)")]
    BadVersion(u32),
    /// The length field is below the 32-byte header or the fixed part of its operation.
    #[error("length {length} is smaller than the {minimum} bytes this packet needs")]
    LengthTooSmall { length: u32, minimum: u32 },
    #[error("length {length} exceeds the maximum packet length {max}")]
    LengthTooLarge { length: u32, max: u32 },
    #[error("unknown operation {0}")]
    UnknownOperation(u32),
    /// Samba's REQ_TUNNEL (operation 10) is recognised but not part of this protocol.
    #[error("REQ_TUNNEL (operation 10) is not supported")]
    TunnelUnsupported,
    /// A payload was followed by bytes that no field accounts for.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A field holds a value its type cannot take.
    #[error("invalid {what}: {value}")]
    InvalidValue { what: &'static str, value: u64 },
    #[error("string is not NUL-terminated")]
    UnterminatedString,
}

pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
