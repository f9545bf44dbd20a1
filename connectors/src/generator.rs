//! A generator source: records made from sequence numbers, as fast as possible or at a set rate.

use tidal_engine::{Poll, Progress, Result, SourceReader, Time};

use crate::position::{self, Residues, Sequence};
use crate::throttle::Throttle;

/// Makes record `f(i)` for sequence numbers `i = 0, 1, 2, …`, split across workers (worker `w` of
/// `p` makes the numbers with `i % p == w`). Unbounded unless [`count`](Generator::count) is set;
/// [`rate`](Generator::rate) limits the records per second over the whole job.
///
/// ```
/// use tidal_connectors::prelude::*;
/// // 3 records per second, 6 in all: about 2 seconds.
/// let g = Generator::new(|i| format!("event {i}")).rate(3.0).count(6);
/// let out: Vec<String> = tidal_engine::Job::local(1).run(move |env| env.generate(g.clone()).collect()).unwrap();
/// assert_eq!(out.len(), 6);
/// ```
pub struct Generator<T> {
    make: std::sync::Arc<dyn Fn(u64) -> T + Send + Sync>,
    count: Option<u64>,
    rate: Option<f64>,
    single: bool,
}

impl<T> Clone for Generator<T> {
    fn clone(&self) -> Self {
        Generator {
            make: self.make.clone(),
            count: self.count,
            rate: self.rate,
            single: self.single,
        }
    }
}

impl<T: 'static> Generator<T> {
    /// A generator of `make(i)`, unbounded and unthrottled.
    pub fn new(make: impl Fn(u64) -> T + Send + Sync + 'static) -> Self {
        Generator {
            make: std::sync::Arc::new(make),
            count: None,
            rate: None,
            single: false,
        }
    }
    /// Stops after `n` records in all.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }
    /// At most `per_second` records per second over the whole job.
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }
    /// Generates every record on worker 0 only, in sequence order (like a non-parallel source in
    /// Flink): records of the same key then reach keyed operators in sequence order.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u64> = tidal_engine::Job::local(2)
    ///     .run(|env| env.generate(Generator::new(|i| i).count(5).single_instance()).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![0, 1, 2, 3, 4]);
    /// ```
    pub fn single_instance(mut self) -> Self {
        self.single = true;
        self
    }
    pub(crate) fn reader(self, index: usize, peers: usize) -> GeneratorReader<T> {
        let (index, peers) = (index as u64, peers as u64);
        let classes = match (self.single, index) {
            (true, 0) => vec![Residues { next: 0, step: 1 }],
            (true, _) => vec![],
            (false, _) => vec![Residues {
                next: index,
                step: peers,
            }],
        };
        let instances = if self.single { 1.0 } else { peers as f64 };
        let mut reader = GeneratorReader {
            make: self.make,
            sequence: Sequence::new(classes),
            end: self.count,
            throttle: self.rate.map(|r| Throttle::new(r, instances as usize)),
            total: 0,
        };
        reader.total = reader.left().unwrap_or(0);
        reader
    }
}

pub(crate) struct GeneratorReader<T> {
    make: std::sync::Arc<dyn Fn(u64) -> T + Send + Sync>,
    sequence: Sequence,
    end: Option<u64>,
    throttle: Option<Throttle>,
    /// Records it had to make when it started (or was restored), with a count.
    total: u64,
}

impl<T: 'static> GeneratorReader<T> {
    /// Records still to make (`None`: without a count, no end).
    fn left(&self) -> Option<u64> {
        let end = self.end?;
        Some(
            self.sequence
                .classes()
                .iter()
                .filter(|c| c.next < end)
                .map(|c| (end - c.next).div_ceil(c.step))
                .sum(),
        )
    }
    /// Makes up to `max` records (fewer when throttled or at the end): `emit` gets the record
    /// maker and each record's number, so that it can make the record where it belongs.
    fn make_each(&mut self, max: usize, mut emit: impl FnMut(&dyn Fn(u64) -> T, u64)) -> Poll {
        let allowed = match self.throttle.as_mut().map(|t| t.allowed(max)) {
            Some(Err(wait)) => return Poll::Pending(wait),
            Some(Ok(n)) => n,
            None => max,
        };
        let mut left = allowed;
        while left > 0 {
            let Some((first, step, count)) = self.sequence.take_run(self.end, left) else {
                return Poll::Done;
            };
            for i in 0..count as u64 {
                emit(&*self.make, first + i * step);
            }
            if let Some(t) = self.throttle.as_mut() {
                t.made(count);
            }
            left -= count;
        }
        if self.sequence.peek(self.end).is_none() {
            Poll::Done
        } else {
            Poll::Ready
        }
    }
}

impl<T: 'static> SourceReader for GeneratorReader<T> {
    type Item = T;
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Poll {
        self.make_each(max, |make, n| out.push(make(n)))
    }
    fn read_stamped<F: FnMut(&T) -> Time>(
        &mut self,
        _scratch: &mut Vec<T>,
        out: &mut Vec<(T, Time)>,
        max: usize,
        mut stamp: F,
    ) -> Poll {
        // Each record is made where it belongs and stamped there (Nexmark's events are 152
        // bytes: each copy of a record on its way to `out` cost a twentieth of q7's time).
        out.reserve(max);
        self.make_each(max, |make, n| {
            out.push((make(n), Time::MIN));
            let (item, ts) = out.last_mut().expect("just pushed");
            *ts = stamp(item);
        })
    }
    fn position(&self) -> Option<Vec<u8>> {
        position::encode(self.sequence.classes())
    }
    fn restore(&mut self, positions: &[&[u8]], index: usize, peers: usize) -> Result<()> {
        self.sequence = Sequence::new(position::share(positions, index, peers)?);
        self.total = self.left().unwrap_or(0);
        Ok(())
    }
    fn progress(&self) -> Option<Progress> {
        let left = self.left()?;
        Some(Progress {
            done: self.total.saturating_sub(left),
            total: self.total,
        })
    }
}
