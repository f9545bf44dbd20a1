//! The taxi data of Flink's hands-on training, generated: the same rides and fares, in the same
//! order, as the training's Java generators (and so byte for byte the CSV files of
//! `examples/data/` for 1000 rides), for any number of rides.
//!
//! Everything that decides a value or the order is reproduced exactly: `java.util.Random`
//! (48-bit LCG, `nextInt(bound)`, `nextDouble`, `nextGaussian` with its cached second value), the
//! fdlibm logarithm that `StrictMath.log` specifies, 32-bit float arithmetic, `Math.round`
//! (ties toward +infinity), `Collections.shuffle`, and the binary-heap order of
//! `java.util.PriorityQueue` for END events whose times tie.

use super::{TaxiFare, TaxiRide};

/// `java.util.Random`'s generator.
pub struct JavaRandom {
    seed: u64,
    next_gaussian: Option<f64>,
}

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const MASK: u64 = (1 << 48) - 1;

impl JavaRandom {
    pub fn new(seed: i64) -> Self {
        JavaRandom {
            seed: (seed as u64 ^ MULTIPLIER) & MASK,
            next_gaussian: None,
        }
    }
    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        (self.seed >> (48 - bits)) as u32 as i32
    }
    pub fn next_int(&mut self, bound: i32) -> i32 {
        let r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((bound as i64 * r as i64) >> 31) as i32;
        }
        let mut u = r;
        loop {
            let r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
    pub fn next_double(&mut self) -> f64 {
        let high = (self.next(26) as i64) << 27;
        let low = self.next(27) as i64;
        (high + low) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    pub fn next_gaussian(&mut self) -> f64 {
        if let Some(g) = self.next_gaussian.take() {
            return g;
        }
        loop {
            let v1 = 2.0 * self.next_double() - 1.0;
            let v2 = 2.0 * self.next_double() - 1.0;
            let s = v1 * v1 + v2 * v2;
            if s > 0.0 && s < 1.0 {
                let multiplier = (-2.0 * strict_log(s) / s).sqrt();
                self.next_gaussian = Some(v2 * multiplier);
                return v1 * multiplier;
            }
        }
    }
}

/// The natural logarithm as fdlibm computes it (`StrictMath.log`), bit for bit.
///
/// Not `libm::log`: compared on 20 M random inputs, 198 788 results differed from fdlibm's in the
/// last bit (libm follows a later algorithm), and the generator must reproduce Java's values
/// exactly.
#[allow(clippy::excessive_precision)]
pub fn strict_log(mut x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const TWO54: f64 = 1.801_439_850_948_198_400_00e16;
    const LG1: f64 = 6.666_666_666_666_735_130e-01;
    const LG2: f64 = 3.999_999_999_940_941_908e-01;
    const LG3: f64 = 2.857_142_874_366_239_149e-01;
    const LG4: f64 = 2.222_219_843_214_978_396e-01;
    const LG5: f64 = 1.818_357_216_161_805_012e-01;
    const LG6: f64 = 1.531_383_769_920_937_332e-01;
    const LG7: f64 = 1.479_819_860_511_658_591e-01;
    let hi = |x: f64| (x.to_bits() >> 32) as u32 as i32;
    let lo = |x: f64| x.to_bits() as u32;
    let with_hi =
        |x: f64, h: i32| f64::from_bits(((h as u32 as u64) << 32) | (x.to_bits() & 0xFFFF_FFFF));
    let mut hx = hi(x);
    let lx = lo(x);
    let mut k: i32 = 0;
    if hx < 0x0010_0000 {
        if ((hx & 0x7FFF_FFFF) as u32 | lx) == 0 {
            return f64::NEG_INFINITY;
        }
        if hx < 0 {
            return f64::NAN;
        }
        k -= 54;
        x *= TWO54;
        hx = hi(x);
    }
    if hx >= 0x7FF0_0000 {
        return x + x;
    }
    k += (hx >> 20) - 1023;
    hx &= 0x000F_FFFF;
    let i = (hx + 0x95F64) & 0x10_0000;
    x = with_hi(x, hx | (i ^ 0x3FF0_0000));
    k += i >> 20;
    let f = x - 1.0;
    if (0x000F_FFFF & (2 + hx)) < 3 {
        if f == 0.0 {
            if k == 0 {
                return 0.0;
            }
            let dk = k as f64;
            return dk * LN2_HI + dk * LN2_LO;
        }
        let r = f * f * (0.5 - 0.333_333_333_333_333_33 * f);
        if k == 0 {
            return f - r;
        }
        let dk = k as f64;
        return dk * LN2_HI - ((r - dk * LN2_LO) - f);
    }
    let s = f / (2.0 + f);
    let dk = k as f64;
    let z = s * s;
    let mut i = hx - 0x6147A;
    let w = z * z;
    let j = 0x6B851 - hx;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    i |= j;
    let r = t2 + t1;
    if i > 0 {
        let hfsq = 0.5 * f * f;
        if k == 0 {
            return f - (hfsq - s * (hfsq + r));
        }
        return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f);
    }
    if k == 0 {
        return f - s * (f - r);
    }
    dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f)
}

/// `Math.round(double)`: the closest long, ties toward positive infinity.
fn java_round(x: f64) -> i64 {
    let floor = x.floor();
    floor as i64 + if x - floor >= 0.5 { 1 } else { 0 }
}

const SECONDS_BETWEEN_RIDES: i64 = 20;
const NUMBER_OF_DRIVERS: i32 = 200;
/// 2020-01-01T12:00:00Z in epoch ms.
pub const BEGINNING_MS: i64 = 1_577_880_000_000;

fn bounds() -> (f32, f32, f32, f32) {
    // As Java computes them: (float)(double expression), with 0.1F a float literal.
    let lat_min = (40.5f64 - 0.1) as f32;
    let lat_max = (41.0f64 + 0.1f32 as f64) as f32;
    let lon_min = (-74.05f64 - 0.1) as f32;
    let lon_max = (-73.7f64 + 0.1f32 as f64) as f32;
    (lat_min, lat_max, lon_min, lon_max)
}

/// Every field of a ride is a pure function of its id (each draws from a fresh `Random`).
struct Fields(i64);

impl Fields {
    fn start_time(&self) -> i64 {
        BEGINNING_MS + 1000 * SECONDS_BETWEEN_RIDES * self.0
    }
    fn end_time(&self) -> i64 {
        self.start_time() + 1000 * 60 * self.duration_minutes()
    }
    fn driver_id(&self) -> i64 {
        2_013_000_000 + JavaRandom::new(self.0).next_int(NUMBER_OF_DRIVERS) as i64
    }
    fn duration_minutes(&self) -> i64 {
        self.long(0, 600, 20.0, 40.0)
    }
    fn passenger_cnt(&self) -> i16 {
        self.long2(1, 4) as i16
    }
    fn tip(&self) -> f32 {
        self.long(0, 60, 10.0, 15.0) as f64 as f32
    }
    fn tolls(&self) -> f32 {
        if self.0 % 10 == 0 {
            self.long2(0, 5) as f64 as f32
        } else {
            0.0
        }
    }
    fn total_fare(&self) -> f32 {
        (3.0 + self.duration_minutes() as f64 + self.tip() as f64 + self.tolls() as f64) as f32
    }
    fn long2(&self, lo: i64, hi: i64) -> i64 {
        let mean = (lo + hi) as f32 / 2.0;
        let stddev = (hi - lo) as f32 / 8.0;
        self.long(lo, hi, mean, stddev)
    }
    fn long(&self, lo: i64, hi: i64, mean: f32, stddev: f32) -> i64 {
        let mut rnd = JavaRandom::new(self.0);
        loop {
            let v = java_round(stddev as f64 * rnd.next_gaussian() + mean as f64);
            if lo <= v && v <= hi {
                return v;
            }
        }
    }
    fn float(seed: i64, lo: f32, hi: f32) -> f32 {
        let mean = (lo + hi) / 2.0;
        let stddev = (hi - lo) / 8.0;
        let mut rnd = JavaRandom::new(seed);
        loop {
            let v = (stddev as f64 * rnd.next_gaussian()) as f32 + mean;
            if lo <= v && v <= hi {
                return v;
            }
        }
    }
    fn ride(&self, is_start: bool) -> TaxiRide {
        let (lat_min, lat_max, lon_min, lon_max) = bounds();
        TaxiRide {
            ride_id: self.0,
            is_start,
            event_time: if is_start {
                self.start_time()
            } else {
                self.end_time()
            },
            start_lon: Self::float(self.0, lon_min, lon_max),
            start_lat: Self::float(self.0, lat_min, lat_max),
            end_lon: Self::float(self.0 + 42, lon_min, lon_max),
            end_lat: Self::float(self.0 + 42, lat_min, lat_max),
            passenger_cnt: self.passenger_cnt(),
            taxi_id: self.driver_id(),
            driver_id: self.driver_id(),
        }
    }
    fn fare(&self) -> TaxiFare {
        TaxiFare {
            ride_id: self.0,
            taxi_id: self.driver_id(),
            driver_id: self.driver_id(),
            start_time: self.start_time(),
            payment_type: if self.0 % 2 == 0 { "CARD" } else { "CASH" }.to_string(),
            tip: self.tip(),
            tolls: self.tolls(),
            total_fare: self.total_fare(),
        }
    }
}

/// `TaxiRide.compareTo`: by event time, START before END at equal times.
fn compare(a: &TaxiRide, b: &TaxiRide) -> std::cmp::Ordering {
    a.event_time
        .cmp(&b.event_time)
        .then_with(|| match (a.is_start, b.is_start) {
            (x, y) if x == y => std::cmp::Ordering::Equal,
            (true, _) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        })
}

/// `java.util.PriorityQueue` with natural ordering: the same heap layout, so the same poll order
/// among equal elements.
#[derive(Default)]
struct JavaPriorityQueue {
    q: Vec<TaxiRide>,
}

impl JavaPriorityQueue {
    fn offer(&mut self, x: TaxiRide) {
        self.q.push(x.clone());
        let mut k = self.q.len() - 1;
        while k > 0 {
            let parent = (k - 1) >> 1;
            if compare(&x, &self.q[parent]).is_ge() {
                break;
            }
            self.q[k] = self.q[parent].clone();
            k = parent;
        }
        self.q[k] = x;
    }
    fn peek(&self) -> Option<&TaxiRide> {
        self.q.first()
    }
    fn poll(&mut self) -> Option<TaxiRide> {
        if self.q.is_empty() {
            return None;
        }
        let result = self.q[0].clone();
        let x = self.q.pop().expect("not empty");
        let n = self.q.len();
        if n > 0 {
            let mut k = 0;
            let half = n >> 1;
            while k < half {
                let mut child = (k << 1) + 1;
                let right = child + 1;
                if right < n && compare(&self.q[child], &self.q[right]).is_gt() {
                    child = right;
                }
                if compare(&x, &self.q[child]).is_le() {
                    break;
                }
                self.q[k] = self.q[child].clone();
                k = child;
            }
            self.q[k] = x;
        }
        Some(result)
    }
}

const BATCH_SIZE: i64 = 5;

/// The ride events of the first `ceil(rides / 5)` batches of the training's ride generator, in its
/// emission order, then (the files of `examples/data` are made this way) the END events still queued.
pub fn rides(rides: u64) -> impl Iterator<Item = TaxiRide> {
    let batches = rides.div_ceil(BATCH_SIZE as u64);
    let mut queue = JavaPriorityQueue::default();
    let mut batch_id: i64 = 0;
    let mut done = 0u64;
    let mut ready: std::collections::VecDeque<TaxiRide> = std::collections::VecDeque::new();
    std::iter::from_fn(move || {
        loop {
            if let Some(r) = ready.pop_front() {
                return Some(r);
            }
            if done == batches {
                return queue.poll();
            }
            let mut starts: Vec<TaxiRide> = (1..=BATCH_SIZE)
                .map(|i| Fields(batch_id + i).ride(true))
                .collect();
            let max_start = starts
                .iter()
                .map(|r| r.event_time)
                .max()
                .expect("a batch has rides");
            for i in 1..=BATCH_SIZE {
                queue.offer(Fields(batch_id + i).ride(false));
            }
            while queue
                .peek()
                .is_some_and(|head| head.event_time <= max_start)
            {
                ready.push_back(queue.poll().expect("peeked"));
            }
            // Collections.shuffle(starts, new Random(batchId))
            let mut rnd = JavaRandom::new(batch_id);
            for i in (2..=starts.len()).rev() {
                let j = rnd.next_int(i as i32) as usize;
                starts.swap(i - 1, j);
            }
            ready.extend(starts);
            batch_id += BATCH_SIZE;
            done += 1;
        }
    })
}

/// The fares of rides 1..=n, in ride order (in-order event time).
pub fn fares(n: u64) -> impl Iterator<Item = TaxiFare> {
    (1..=n as i64).map(|id| Fields(id).fare())
}
