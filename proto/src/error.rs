//! The crate's one error type: bytes or messages that do not decode into a domain type.

/// A message from the wire or from disk that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field the message must carry is absent.
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
    /// The bytes are not a valid encoding of the message.
    #[error("undecodable {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// A log entry's event payload does not decode.
    #[error("raft entry {index} carries an undecodable event: {source}")]
    Event {
        index: u64,
        #[source]
        source: prost::DecodeError,
    },
    /// A membership entry without a single voter set.
    #[error("membership entry without a voter set")]
    EmptyMembership,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
