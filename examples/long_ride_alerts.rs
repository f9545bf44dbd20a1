//! Long ride alerts: the rides that last more than two hours — their END comes more than 2 h after
//! their START, or their START has no END by the time the watermark passes START + 2 h (an
//! event-time timer). Events may arrive END before START. Watermarks: bounded out-of-orderness of
//! 60 s on `eventTime`.
//!
//! Output: one `rideId` per line, no header.
//!
//! ```text
//! cargo run --release --example long_ride_alerts [-- --rides rides.csv --output DIR -w 2]
//! ```

#[path = "taxi/mod.rs"]
mod taxi;

use std::process::ExitCode;
use std::time::Duration;

use taxi::TaxiRide;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TWO_HOURS: i64 = 2 * 60 * 60 * 1000;

/// Remembers the first event of each ride; alerts when the pair spans more than two hours, or when
/// the timer at START + 2 h fires before the END is seen.
struct AlertFunction;

impl KeyedProcessFunction<i64, TaxiRide> for AlertFunction {
    type State = Option<TaxiRide>;
    type Out = i64;
    type Side = ();
    fn process_element(
        &mut self,
        ride: TaxiRide,
        ctx: &mut ProcessContext<'_, i64, Option<TaxiRide>, i64, ()>,
    ) {
        match ctx.state().take() {
            None => {
                if ride.is_start {
                    ctx.register_event_time_timer(ride.event_time + TWO_HOURS);
                }
                *ctx.state() = Some(ride);
            }
            Some(first) => {
                let (start, end) = if ride.is_start {
                    (ride, first)
                } else {
                    (first, ride)
                };
                if !end.is_start && start.is_start {
                    ctx.delete_event_time_timer(start.event_time + TWO_HOURS);
                }
                if end.event_time - start.event_time > TWO_HOURS {
                    ctx.output(start.ride_id);
                }
                ctx.clear_state();
            }
        }
    }
    fn on_timer(
        &mut self,
        _at: Time,
        _domain: TimeDomain,
        ctx: &mut ProcessContext<'_, i64, Option<TaxiRide>, i64, ()>,
    ) {
        // Only a START is waiting: its ride has lasted two hours already.
        let id = *ctx.key();
        ctx.output(id);
        ctx.clear_state();
    }
}

fn main() -> ExitCode {
    taxi::main_with(|args| {
        let job = Job::new(&args.tidal)?;
        job.run(move |env| {
            let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(60))
                .with_timestamps(|r: &TaxiRide| r.event_time);
            let alerts = taxi::rides(env, &args, strategy)
                .key_by(|r| r.ride_id)
                .process(AlertFunction)
                .name("long rides")
                .map(|id| id.to_string());
            taxi::emit(alerts, &args.output);
        })
    })
}
