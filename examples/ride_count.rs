//! Ride count: the rolling count of ride events (START and END) per driver.
//!
//! Output: `driverId,count`, the final count of each driver, one per line, no header line.
//!
//! ```text
//! cargo run --release --example ride_count [-- --rides rides.csv --output DIR -w 2]
//! ```

#[path = "taxi/mod.rs"]
mod taxi;

use std::process::ExitCode;

use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    taxi::main_with(|args| {
        let job = Job::new(&args.tidal)?;
        job.run(move |env| {
            let counts = taxi::rides(env, &args, WatermarkStrategy::ingestion_time())
                .key_by(|r| r.driver_id)
                .count()
                .final_values()
                .map(|(driver, n)| format!("{driver},{n}"));
            taxi::emit(counts, &args.output);
        })
    })
}
