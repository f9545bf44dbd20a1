//! Ride cleansing: keep the ride events that start and end in New York City.
//!
//! Output: the kept events in the format of `rides.csv`
//! (`rideId,isStart,eventTime,startLon,startLat,endLon,endLat,passengerCnt,taxiId,driverId`),
//! one per line, no header line.
//!
//! ```text
//! cargo run --release --example ride_cleansing [-- --rides rides.csv --output DIR -w 2]
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
            let rides = taxi::rides(env, &args, WatermarkStrategy::ingestion_time());
            let kept = rides
                .filter(|r| r.in_nyc())
                .name("in NYC")
                .map(|r| r.to_csv());
            taxi::emit(kept, &args.output);
        })
    })
}
