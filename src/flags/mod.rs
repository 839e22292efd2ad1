//! Flag groups shared by the server commands (`regatta core`, `regatta edge`, `regatta dev`).

#[cfg(test)]
mod contract;
