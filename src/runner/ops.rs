//! What the admin does to one job (`mailroom queue delete|retry`):
//! abandon it, with or without a bounce, or make it due now.  Both take
//! the job's lock as a queue run would, so a job being delivered right now
//! is left alone (and the admin told).

use super::attempt::Failed;
use super::{Runner, start};
use crate::dsn;
use crate::log;
use crate::queue::QueueId;

impl Runner {
    /// Give up on a job at an admin's request: with `bounce`, its sender
    /// gets a failure notice for every pending recipient ("deleted by the
    /// administrator"); then the job is removed.  False when the job is
    /// being delivered right now.
    pub fn abandon(&self, id: &QueueId, bounce: bool, why: &str) -> Result<bool, String> {
        // A held job is locked where it lies: never released first, so no
        // runner can send it between the release and the removal.
        let locked = match self.queue.lock(id) {
            Ok(None) => self.queue.lock_with("hf", id),
            other => other,
        };
        let Some(mut job) = locked.map_err(|e| crate::exit::io_reason(&e))? else {
            return Ok(false);
        };
        let env = job.envelope().map_err(|e| e.to_string())?;
        if bounce {
            let body = std::fs::read(job.data_path()).unwrap_or_default();
            let failed: Vec<Failed> = env
                .recipients
                .iter()
                .map(|r| Failed {
                    rcpt: r.clone(),
                    actual: None,
                    status: "5.0.0".into(),
                    text: why.to_string(),
                    remote_reply: false,
                    remote_mta: None,
                })
                .collect();
            for bid in self.bounce(id, &env, &body, dsn::Kind::Failure, &failed) {
                start::start_delivery(
                    &self.cfg.queue_dir,
                    &bid,
                    crate::config::DeliveryMode::Background,
                );
            }
        }
        job.finish().map_err(|e| crate::exit::io_reason(&e))?;
        log::notice(Some(id.as_str()), &format!("removed from the queue: {why}"));
        Ok(true)
    }

    /// Make a job due now (its retry time forgotten).  False when it is
    /// being delivered right now.
    pub fn make_due(&self, id: &QueueId) -> Result<bool, String> {
        let Some(mut job) = self
            .queue
            .lock(id)
            .map_err(|e| crate::exit::io_reason(&e))?
        else {
            return Ok(false);
        };
        let mut env = job.envelope().map_err(|e| e.to_string())?;
        env.last_attempt = 0;
        job.rewrite(&env).map_err(|e| crate::exit::io_reason(&e))?;
        Ok(true)
    }
}
