//! The taxi data of Flink's hands-on training, shared by the taxi examples: record types, the CSV
//! format, the embedded default data (rides 1..1000) and the flags every taxi example takes.

#![allow(dead_code)]

pub mod generator;

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tidal::prelude::*;

/// A START or END event of a taxi ride (the columns of `rides.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxiRide {
    pub ride_id: i64,
    pub is_start: bool,
    /// Epoch ms: the start time for START, the end time for END.
    pub event_time: i64,
    pub start_lon: f32,
    pub start_lat: f32,
    pub end_lon: f32,
    pub end_lat: f32,
    pub passenger_cnt: i16,
    pub taxi_id: i64,
    pub driver_id: i64,
}

/// The fare of a ride (the columns of `fares.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxiFare {
    pub ride_id: i64,
    pub taxi_id: i64,
    pub driver_id: i64,
    pub start_time: i64,
    pub payment_type: String,
    pub tip: f32,
    pub tolls: f32,
    pub total_fare: f32,
}

/// A 32-bit float as the data files write it: the shortest decimal that reads back as the same
/// value (on a tie between two shortest candidates, the one rounded half to even from the exact
/// value), in positional notation with at least one fractional digit (`10.0`, `-73.9947`).
pub fn fmt_f32(v: f32) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Fewest significant digits that read back as `v`; `{:e}` with a precision rounds the exact
    // binary value half to even.
    let mut sci = String::new();
    for digits in 1..=9 {
        sci = format!("{:.*e}", digits - 1, v as f64);
        if sci.parse::<f32>() == Ok(v) {
            break;
        }
    }
    let (mantissa, exponent) = sci.split_once('e').expect("scientific notation");
    let exponent: i32 = exponent.parse().expect("exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    // The decimal point goes after `exponent + 1` digits.
    let point = exponent + 1;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.push_str(&"0".repeat(point as usize - digits.len()));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

impl TaxiRide {
    /// The ride as a line of `rides.csv` (no line break).
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.ride_id,
            self.is_start,
            self.event_time,
            fmt_f32(self.start_lon),
            fmt_f32(self.start_lat),
            fmt_f32(self.end_lon),
            fmt_f32(self.end_lat),
            self.passenger_cnt,
            self.taxi_id,
            self.driver_id
        )
    }
    /// Whether the ride starts and ends in New York City.
    pub fn in_nyc(&self) -> bool {
        in_nyc(self.start_lon, self.start_lat) && in_nyc(self.end_lon, self.end_lat)
    }
}

impl TaxiFare {
    /// The fare as a line of `fares.csv` (no line break).
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.ride_id,
            self.taxi_id,
            self.driver_id,
            self.start_time,
            self.payment_type,
            fmt_f32(self.tip),
            fmt_f32(self.tolls),
            fmt_f32(self.total_fare)
        )
    }
}

/// New York City's bounding box, comparing the f32 coordinates widened to f64 (as the training does).
pub fn in_nyc(lon: f32, lat: f32) -> bool {
    let (lon, lat) = (lon as f64, lat as f64);
    (-74.05..=-73.7).contains(&lon) && (40.5..=41.0).contains(&lat)
}

/// A taxi exercise of Flink's hands-on training, on rides and fares read from files or generated
/// (what it computes: the top of the example's source)
#[derive(clap::Parser, Debug)]
pub struct TaxiArgs {
    #[command(flatten)]
    pub tidal: JobArgs,
    /// Rides in the format of rides.csv (a file, directory or glob); default: generated rides.
    #[arg(long, value_name = "FILE")]
    pub rides: Option<String>,
    /// Fares in the format of fares.csv (a file, directory or glob); default: generated fares.
    #[arg(long, value_name = "FILE")]
    pub fares: Option<String>,
    /// Without --rides/--fares: how many rides (and fares) to generate, as the training's generators
    /// do (1000 gives exactly the training's data files for rides 1..1000).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub generate: u64,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing to stdout.
    #[arg(long, value_name = "DIR")]
    pub output: Option<Location>,
    /// Read at most this many ride (or fare) events per second over the whole job.
    #[arg(long, value_name = "EVENTS_PER_S")]
    pub rate: Option<f64>,
}

/// The ride events, from `--rides` or generated (`--generate` rides), with timestamps and
/// watermarks from `strategy`.
pub fn rides<'s>(
    env: &mut Env<'s>,
    args: &TaxiArgs,
    strategy: WatermarkStrategy<TaxiRide>,
) -> DataStream<'s, TaxiRide> {
    match (&args.rides, args.rate) {
        (Some(p), None) => env.read_with(CsvFiles::<TaxiRide>::new(p), strategy),
        (Some(p), Some(r)) => env.read_with(CsvFiles::<TaxiRide>::new(p).rate(r), strategy),
        (None, None) => env.from_iter_with(generator::rides(args.generate), strategy),
        (None, Some(r)) => {
            let events: Vec<TaxiRide> = generator::rides(args.generate).collect();
            let n = events.len() as u64;
            let g = Generator::new(move |i| events[i as usize].clone())
                .count(n)
                .rate(r);
            env.generate_with(g, strategy)
        }
    }
}

/// The fares, from `--fares` or generated (`--generate` fares), with timestamps and watermarks
/// from `strategy`.
pub fn fares<'s>(
    env: &mut Env<'s>,
    args: &TaxiArgs,
    strategy: WatermarkStrategy<TaxiFare>,
) -> DataStream<'s, TaxiFare> {
    match (&args.fares, args.rate) {
        (Some(p), None) => env.read_with(CsvFiles::<TaxiFare>::new(p), strategy),
        (Some(p), Some(r)) => env.read_with(CsvFiles::<TaxiFare>::new(p).rate(r), strategy),
        (None, None) => env.from_iter_with(generator::fares(args.generate), strategy),
        (None, Some(r)) => {
            let events: Vec<TaxiFare> = generator::fares(args.generate).collect();
            let n = events.len() as u64;
            let g = Generator::new(move |i| events[i as usize].clone())
                .count(n)
                .rate(r);
            env.generate_with(g, strategy)
        }
    }
}

/// Writes lines to part files in `output`, or prints them on process 0.
pub fn emit(lines: DataStream<'_, String>, output: &Option<Location>) {
    match output {
        Some(dir) => lines.write_text(dir.clone()),
        None => lines.print(),
    }
}

/// Runs an example's `run`, printing an error and exiting with 1 on failure.
pub fn main_with(run: impl FnOnce(TaxiArgs) -> tidal::Result<()>) -> ExitCode {
    tidal::main_with(run)
}
