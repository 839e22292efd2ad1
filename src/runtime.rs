//! The async runtime a server command runs on: `--runtime.worker-threads`.

pub use crate::flags::runtime::RuntimeArgs;

impl RuntimeArgs {
    /// A multi-thread runtime with IO and timers, `worker_threads` workers when given.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if let Some(n) = self.worker_threads {
            builder.worker_threads(usize::from(n));
        }
        builder.build()
    }
}
