//! The source's `migration` thread, started dormant while `rvmm run` sets the VM up: its
//! first act is to apply `sandbox::Role::Migration` (the one filter that may open a stream
//! socket), so it does not inherit the emulator thread's filter, which forbids socket(2).
//! It then waits for jobs: each `migrate` hands it a [`Job`], which it runs to its end
//! (`precopy::run`) before it takes the next. `migrate` refuses a second migration while
//! one is under way, so a job never waits behind another.

use std::sync::mpsc;

use super::precopy::{self, Job};
use super::MigrationError;

/// The handle of the dormant `migration` thread.
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread. Call it before the emulator thread applies its own filter.
    pub fn start() -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("migration".into())
            .spawn(move || {
                crate::sandbox::apply(crate::sandbox::Role::Migration);
                while let Ok(job) = queue.recv() {
                    precopy::run(job);
                }
            })?;
        Ok(Worker { jobs })
    }

    /// Hands `job` to the thread. The thread ends when the handle is dropped (once its
    /// current job is over; a VM that ends does not wait for it).
    pub fn submit(&self, job: Job) -> Result<(), MigrationError> {
        self.jobs
            .send(job)
            .map_err(|_| MigrationError::Protocol("the migration thread has ended".into()))
    }
}
