//! Rides and fares: each START ride joined with its fare by `rideId` (connected keyed streams,
//! with the one that arrives first kept in state until the other comes).
//!
//! Output: the ride's columns (as in `rides.csv`) then the fare's columns (as in `fares.csv`), one
//! line per pair, no header.
//!
//! ```text
//! cargo run --release --example rides_and_fares [-- --rides rides.csv --fares fares.csv --output DIR -w 2]
//! ```

#[path = "taxi/mod.rs"]
mod taxi;

use std::process::ExitCode;

use taxi::{TaxiFare, TaxiRide};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps whichever of ride and fare comes first; emits the pair when the other arrives.
struct Enrich;

type Pending = (Option<TaxiRide>, Option<TaxiFare>);

impl KeyedCoProcessFunction<i64, TaxiRide, TaxiFare> for Enrich {
    type State = Pending;
    type Out = (TaxiRide, TaxiFare);
    type Side = ();
    fn process_first(
        &mut self,
        ride: TaxiRide,
        ctx: &mut ProcessContext<'_, i64, Pending, Self::Out, ()>,
    ) {
        match ctx.state().1.take() {
            Some(fare) => {
                ctx.output((ride, fare));
                ctx.clear_state();
            }
            None => ctx.state().0 = Some(ride),
        }
    }
    fn process_second(
        &mut self,
        fare: TaxiFare,
        ctx: &mut ProcessContext<'_, i64, Pending, Self::Out, ()>,
    ) {
        match ctx.state().0.take() {
            Some(ride) => {
                ctx.output((ride, fare));
                ctx.clear_state();
            }
            None => ctx.state().1 = Some(fare),
        }
    }
}

fn main() -> ExitCode {
    taxi::main_with(|args| {
        let job = Job::new(&args.tidal)?;
        job.run(move |env| {
            let rides = taxi::rides(env, &args, WatermarkStrategy::ingestion_time())
                .filter(|r| r.is_start)
                .key_by(|r| r.ride_id);
            let fares =
                taxi::fares(env, &args, WatermarkStrategy::ingestion_time()).key_by(|f| f.ride_id);
            let pairs = rides
                .connect(fares)
                .process(Enrich)
                .name("enrich")
                .map(|(ride, fare)| format!("{},{}", ride.to_csv(), fare.to_csv()));
            taxi::emit(pairs, &args.output);
        })
    })
}
