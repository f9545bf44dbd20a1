//! Hourly tips: per driver per hour (tumbling event-time windows on the fare's start time, with
//! monotonous timestamps) the sum of tips as a 32-bit float added in the order the fares occur,
//! then the driver with the most tips in each hour.
//!
//! Output: `windowEnd,driverId,sumOfTips` (window end in epoch ms), one line per hour, no header.
//! When drivers tie for the maximum, any of them may be written.
//!
//! ```text
//! cargo run --release --example hourly_tips [-- --fares fares.csv --output DIR -w 2]
//! ```

#[path = "taxi/mod.rs"]
mod taxi;

use std::process::ExitCode;
use std::time::Duration;

use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    taxi::main_with(|args| {
        let job = Job::new(&args.tidal)?;
        job.run(move |env| {
            let hour = Windows::tumbling(Duration::from_secs(3600));
            let fares = taxi::fares(
                env,
                &args,
                WatermarkStrategy::monotonous().with_timestamps(|f: &taxi::TaxiFare| f.start_time),
            );
            let per_driver = fares
                .map(|f| (f.driver_id, (f.start_time, f.tip)))
                .keyed()
                .window(hour)
                .process(|driver: &i64, w: &Window, tips: &[(i64, f32)]| {
                    // Add in the order the fares occur, whichever worker read them.
                    let mut tips = tips.to_vec();
                    tips.sort_by_key(|t| t.0);
                    let sum = tips.iter().fold(0.0f32, |s, t| s + t.1);
                    (w.end, *driver, sum)
                })
                .name("tips per driver per hour");
            let best = per_driver
                .window_all(hour)
                .reduce(|best, candidate| {
                    if candidate.2 > best.2 {
                        *best = candidate
                    }
                })
                .name("max per hour")
                .map(|((), (end, driver, sum))| format!("{end},{driver},{}", taxi::fmt_f32(sum)));
            taxi::emit(best, &args.output);
        })
    })
}
