//! The bottom layer: small rules every other module may use, with no knowledge of requests,
//! storage or forges.

pub mod clock;
pub mod github;
pub mod secrets;
