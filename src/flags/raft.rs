//! The Raft transport's listen address: `--raft.address` (the other `--raft.*` options are
//! a core node's own, in `core/args.rs`).

#[derive(clap::Args, Debug, Clone)]
pub struct RaftAddressArg {
    /// Address the Raft transport listens on.
    #[arg(
        long = "raft.address",
        env = "REGATTA_RAFT_ADDRESS",
        default_value = "http://127.0.0.1:5012"
    )]
    pub raft_address: String,
}
