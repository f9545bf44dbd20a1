//! Sources from Rust values: collections and iterators.

use tidal_engine::{DataStream, Env, Poll, Result, SourceReader, WatermarkStrategy};

use crate::files::FileSource;
use crate::generator::Generator;
use crate::position::{self, Residues, Sequence};

/// Sources on an [`Env`].
pub trait Sources<'s> {
    /// A bounded stream of the iterator's items. Every worker builds the same iterator and keeps
    /// the items whose position `j` has `j % peers == worker index`, so each item is read once.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let mut out: Vec<u32> = tidal_engine::Job::local(2).run(|env| env.from_iter(0..5u32).collect()).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![0, 1, 2, 3, 4]);
    /// ```
    #[allow(clippy::wrong_self_convention)]
    fn from_iter<I>(&mut self, items: I) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static;

    /// A stream from a [`Generator`] (a sequence, optionally rate-limited and unbounded).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u64> = tidal_engine::Job::local(2)
    ///     .run(|env| env.generate(Generator::new(|i| i * i).count(4)).collect())
    ///     .unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![0, 1, 4, 9]);
    /// ```
    fn generate<T: 'static>(&mut self, generator: Generator<T>) -> DataStream<'s, T>;

    /// A stream read from files: [`TextFiles`](crate::files::TextFiles), [`CsvFiles`](crate::files::CsvFiles) or [`JsonLinesFiles`](crate::files::JsonLinesFiles).
    ///
    /// ```no_run
    /// use tidal_connectors::prelude::*;
    /// tidal_engine::Job::local(1).run(|env| {
    ///     env.read(TextFiles::new("input/*.txt")).print();
    /// }).unwrap();
    /// ```
    fn read<S: FileSource>(&mut self, source: S) -> DataStream<'s, S::Item>;

    /// Like [`from_iter`](Sources::from_iter), with event timestamps and watermarks from `strategy`.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<u32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter_with(vec![3u32, 1, 2], WatermarkStrategy::monotonous().with_timestamps(|x| *x as i64)).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![3, 1, 2]);
    /// ```
    #[allow(clippy::wrong_self_convention)]
    fn from_iter_with<I>(
        &mut self,
        items: I,
        strategy: WatermarkStrategy<I::Item>,
    ) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static;

    /// A bounded stream of updates `(row, diff)` from `(row, time, diff)` triples, each at its
    /// time (the items are put in time order first; watermarks follow them), to become a
    /// collection with `updates_into_collection` (in `tidal-operators`).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let mut out: Vec<(char, isize)> = tidal_engine::Job::local(2)
    ///     .run(|env| env.updates_from_iter(vec![('a', 5, 1), ('b', 1, 2)]).collect())
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 1), ('b', 2)]);
    /// ```
    fn updates_from_iter<D: 'static>(
        &mut self,
        updates: impl IntoIterator<Item = (D, tidal_engine::Time, isize)>,
    ) -> DataStream<'s, (D, isize)> {
        let mut updates: Vec<(D, tidal_engine::Time, isize)> = updates.into_iter().collect();
        updates.sort_by_key(|(_, t, _)| *t);
        let strategy = WatermarkStrategy::monotonous()
            .with_timestamps(|(_, t, _): &(D, tidal_engine::Time, isize)| *t);
        let stream = self.from_iter_with(updates, strategy);
        stream.then("updates", |s, _| {
            use timely::dataflow::operators::vec::Map;
            s.map(|((row, _, diff), t)| ((row, diff), t))
        })
    }

    /// Like [`generate`](Sources::generate), with event timestamps and watermarks from `strategy`.
    fn generate_with<T: 'static>(
        &mut self,
        generator: Generator<T>,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<'s, T>;

    /// Like [`read`](Sources::read), with event timestamps and watermarks from `strategy`; each
    /// worker's watermark follows the records of its own splits.
    fn read_with<S: FileSource>(
        &mut self,
        source: S,
        strategy: WatermarkStrategy<S::Item>,
    ) -> DataStream<'s, S::Item>;
}

/// The reader of a source that could not be set up (the job is failing already).
pub(crate) struct NoRecords<T>(pub(crate) std::marker::PhantomData<T>);

impl<T: 'static> SourceReader for NoRecords<T> {
    type Item = T;
    fn read(&mut self, _out: &mut Vec<T>, _max: usize) -> Poll {
        Poll::Done
    }
}

struct IterReader<I: Iterator> {
    items: I,
    /// Global position of the next item.
    position: u64,
    /// The positions this instance reads.
    mine: Sequence,
}

impl<I: Iterator + 'static> SourceReader for IterReader<I>
where
    I::Item: 'static,
{
    type Item = I::Item;
    fn read(&mut self, out: &mut Vec<I::Item>, max: usize) -> Poll {
        let mut taken = 0;
        while taken < max {
            if self.mine.peek(None).is_none() {
                return Poll::Done;
            }
            match self.items.next() {
                Some(item) => {
                    if self.mine.owns(self.position) {
                        out.push(item);
                        self.mine.advance(self.position);
                        taken += 1;
                    }
                    self.position += 1;
                }
                None => return Poll::Done,
            }
        }
        Poll::Ready
    }
    fn progress(&self) -> Option<tidal_engine::Progress> {
        // Every instance walks the whole iterator (taking its own items): how far it has
        // walked, when the iterator knows its length.
        match self.items.size_hint() {
            (left, Some(exact)) if left == exact => Some(tidal_engine::Progress {
                done: self.position,
                total: self.position + left as u64,
            }),
            _ => None,
        }
    }
    fn position(&self) -> Option<Vec<u8>> {
        position::encode(self.mine.classes())
    }
    fn restore(&mut self, positions: &[&[u8]], index: usize, peers: usize) -> Result<()> {
        self.mine = Sequence::new(position::share(positions, index, peers)?);
        Ok(())
    }
}

impl<'s> Sources<'s> for Env<'s> {
    fn from_iter<I>(&mut self, items: I) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
    {
        self.from_iter_with(items, WatermarkStrategy::ingestion_time())
    }

    fn generate<T: 'static>(&mut self, generator: Generator<T>) -> DataStream<'s, T> {
        self.generate_with(generator, WatermarkStrategy::ingestion_time())
    }

    fn read<S: FileSource>(&mut self, source: S) -> DataStream<'s, S::Item> {
        self.read_with(source, WatermarkStrategy::ingestion_time())
    }

    fn from_iter_with<I>(
        &mut self,
        items: I,
        strategy: WatermarkStrategy<I::Item>,
    ) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
    {
        let name = format!("from_iter#{}", self.context().next_operator_id());
        let reader = IterReader {
            items: items.into_iter(),
            position: 0,
            mine: Sequence::new(vec![Residues {
                next: self.worker_index() as u64,
                step: self.peers() as u64,
            }]),
        };
        self.source_with(&name, reader, strategy)
    }

    fn generate_with<T: 'static>(
        &mut self,
        generator: Generator<T>,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<'s, T> {
        let name = format!("generate#{}", self.context().next_operator_id());
        let reader = generator.reader(self.worker_index(), self.peers());
        self.source_with(&name, reader, strategy)
    }

    fn read_with<S: FileSource>(
        &mut self,
        source: S,
        strategy: WatermarkStrategy<S::Item>,
    ) -> DataStream<'s, S::Item> {
        let name = format!("{}#{}", source.kind(), self.context().next_operator_id());
        match source.reader(self.context(), &name) {
            Ok(reader) => self.source_with(&name, reader, strategy),
            Err(e) => {
                // The job fails with the reason before it reads anything; the source is empty.
                self.context().fail(e);
                let nothing = NoRecords(std::marker::PhantomData);
                self.source_with(&name, nothing, WatermarkStrategy::ingestion_time())
            }
        }
    }
}
