//! The benchmark jobs written directly on timely: the overhead floor Tidal is measured against.
//!
//! They read the same files and write the same lines as the examples (`wordcount`,
//! `bid_windows`), one part file per worker, so that outputs can be compared line for line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Where a baseline's results go: part files in a directory, or lines collected in memory.
#[derive(Clone)]
pub enum Out {
    /// `DIR/part-WWWWW.txt`, one per worker (appended to: the directory should start empty).
    Dir(PathBuf),
    /// Every line, gathered from all workers.
    Lines(Arc<Mutex<Vec<String>>>),
}

impl Out {
    /// Hands worker `index`'s lines to their destination.
    fn emit(&self, index: usize, lines: impl Iterator<Item = String>) {
        match self {
            Out::Dir(dir) => {
                std::fs::create_dir_all(dir).expect("create the output directory");
                let path = dir.join(format!("part-{index:05}.txt"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .expect("open a part file");
                let mut file = std::io::BufWriter::with_capacity(1 << 16, file);
                for line in lines {
                    writeln!(file, "{line}").expect("write a part file");
                }
                file.flush().expect("write a part file");
            }
            Out::Lines(all) => all.lock().unwrap().extend(lines),
        }
    }
}

/// Lines written by one worker as they come: to its part file, or gathered in memory.
pub struct LineWriter {
    file: Option<std::io::BufWriter<std::fs::File>>,
    memory: Option<(Shared, Vec<String>)>,
}

/// Lines gathered from every worker.
type Shared = Arc<Mutex<Vec<String>>>;

impl LineWriter {
    /// Writes one line made by `line` (with no string in between on the way to a file).
    pub fn write_line(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(file) = &mut self.file {
            file.write_fmt(line).expect("write a part file");
            file.write_all(b"\n").expect("write a part file");
        } else if let Some((_, kept)) = &mut self.memory {
            kept.push(line.to_string());
        }
    }
    /// Writes `lines`, each followed by a newline.
    pub fn write_lines(&mut self, lines: impl Iterator<Item = String>) {
        if let Some(file) = &mut self.file {
            for line in lines {
                writeln!(file, "{line}").expect("write a part file");
            }
        } else if let Some((_, kept)) = &mut self.memory {
            kept.extend(lines);
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if let Some(file) = &mut self.file
            && let Err(e) = file.flush()
        {
            eprintln!("writing a part file failed: {e}");
            std::process::exit(1);
        }
        if let Some((all, kept)) = &mut self.memory {
            all.lock().unwrap().append(kept);
        }
    }
}

impl Out {
    /// A writer for worker `index`'s lines.
    pub fn writer(&self, index: usize) -> LineWriter {
        match self {
            Out::Dir(dir) => {
                std::fs::create_dir_all(dir).expect("create the output directory");
                let file = std::fs::File::create(dir.join(format!("part-{index:05}.txt")))
                    .expect("create a part file");
                LineWriter {
                    file: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
                    memory: None,
                }
            }
            Out::Lines(all) => LineWriter {
                file: None,
                memory: Some((Arc::clone(all), Vec::new())),
            },
        }
    }
}

pub(crate) fn fx_hash<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// W1 on timely, written for speed as one would by hand: each worker reads its byte range of the
/// file and counts its words in a local hash map looked up by `&str` (a `String` is made only for
/// a word it has not seen before); at the end of its input it sends each word's partial count to
/// the word's owner, which adds them up and writes `word count` lines.
pub fn wordcount(input: &Path, workers: usize, out: Out) {
    let path = input.to_path_buf();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut lines = LineRange::new(&path, index, peers);
        let out = out.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let partials = timely::dataflow::operators::generic::operator::source::<
                _,
                timely::container::CapacityContainerBuilder<Vec<(String, u64)>>,
                _,
                _,
            >(scope, "count locally", |cap, info| {
                let activator = scope.activator_for(info.address);
                let mut cap = Some(cap);
                let mut counts: FxHashMap<String, u64> = FxHashMap::default();
                let (mut line, mut scratch) = (String::new(), String::new());
                move |output| {
                    let Some(c) = cap.as_ref() else {
                        return;
                    };
                    for _ in 0..8192 {
                        line.clear();
                        if !lines.next_into(&mut line) {
                            output.session(c).give_iterator(counts.drain());
                            cap = None;
                            return;
                        }
                        tidal::for_each_word(&line, &mut scratch, |w| match counts.get_mut(w) {
                            Some(n) => *n += 1,
                            None => {
                                counts.insert(w.to_string(), 1);
                            }
                        });
                    }
                    activator.activate();
                }
            });
            partials.sink(
                Exchange::new(|(w, _): &(String, u64)| fx_hash(w)),
                "count",
                {
                    let mut counts: FxHashMap<String, u64> = FxHashMap::default();
                    let mut done = false;
                    move |(input, frontier)| {
                        input.for_each(|_, data| {
                            for (w, n) in data.drain(..) {
                                *counts.entry(w).or_insert(0) += n;
                            }
                        });
                        if frontier.is_empty() && !done {
                            done = true;
                            out.emit(index, counts.drain().map(|(w, n)| format!("{w} {n}")));
                        }
                    }
                },
            );
        });
    })
    .expect("timely runs");
}

/// W2 on timely: each worker reads its byte range of the CSV of bids; a bid is sent at the end
/// of its 10 s window, the source's capability follows the watermark (the largest event time
/// read minus 2 s); bids are exchanged by auction, counted and maxed per window end, and a
/// window is written (`window_end,auction,count,max_price`) once the frontier passes its end.
pub fn bid_windows(input: &Path, workers: usize, out: Out) {
    const WINDOW: i64 = 10_000;
    const OUT_OF_ORDER: i64 = 2_000;
    let path = input.to_path_buf();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut lines = LineRange::new(&path, index, peers);
        let out = out.clone();
        worker.dataflow::<i64, _, _>(|scope| {
            let bids = timely::dataflow::operators::generic::operator::source::<
                _,
                timely::container::CapacityContainerBuilder<Vec<(u64, u64)>>,
                _,
                _,
            >(scope, "bids", |cap, info| {
                let activator = scope.activator_for(info.address);
                let mut cap = Some(cap);
                let mut max_seen = i64::MIN;
                let mut line = Vec::new();
                let mut batches: Vec<(i64, Vec<(u64, u64)>)> = Vec::new();
                move |output| {
                    let Some(c) = cap.as_mut() else {
                        return;
                    };
                    // A batch of lines, sent as one container per window: bids up to 2 s late
                    // alternate between two windows after each boundary, and a container per
                    // run of one window would cross the exchange in many small pieces.
                    let mut ended = false;
                    for _ in 0..8192 {
                        line.clear();
                        if !lines.next_bytes(&mut line) {
                            ended = true;
                            break;
                        }
                        let (auction, price, time) = parse_bid(&line);
                        max_seen = max_seen.max(time);
                        let end = time - time.rem_euclid(WINDOW) + WINDOW;
                        match batches.iter_mut().find(|(e, _)| *e == end) {
                            Some((_, batch)) => batch.push((auction, price)),
                            None => batches.push((end, vec![(auction, price)])),
                        }
                    }
                    for (e, mut batch) in batches.drain(..) {
                        output.session(&c.delayed(&e)).give_container(&mut batch);
                    }
                    if ended {
                        cap = None;
                    } else {
                        let watermark = max_seen.saturating_sub(OUT_OF_ORDER);
                        if watermark > *c.time() {
                            c.downgrade(&watermark);
                        }
                        activator.activate();
                    }
                }
            });
            bids.sink(Exchange::new(|b: &(u64, u64)| b.0), "windows", {
                let mut windows: BTreeMap<i64, FxHashMap<u64, (u64, u64)>> = BTreeMap::new();
                let mut writer = out.writer(index);
                move |(input, frontier)| {
                    input.for_each(|cap, data| {
                        let window = windows.entry(*cap.least().expect("a time")).or_default();
                        for (auction, price) in data.drain(..) {
                            let e = window.entry(auction).or_insert((0, 0));
                            e.0 += 1;
                            e.1 = e.1.max(price);
                        }
                    });
                    while let Some((&end, _)) = windows.first_key_value() {
                        if frontier.less_equal(&end) {
                            break;
                        }
                        let window = windows.remove(&end).expect("present");
                        for (auction, (n, max)) in window {
                            writer.write_line(format_args!("{end},{auction},{n},{max}"));
                        }
                    }
                }
            });
        });
    })
    .expect("timely runs");
}

/// A CSV line `auction,price,event_time_ms` (digits only; a line break at the end or not), parsed
/// byte by byte: the baseline's input path should cost no more than the least a hand-written
/// job would do.
fn parse_bid(line: &[u8]) -> (u64, u64, i64) {
    let bad = || -> ! { panic!("not a bid line: {:?}", String::from_utf8_lossy(line)) };
    let mut rest = line;
    // One field's digits folded in a register, then its separator: a comma, or the line's end
    // after the last field.
    let mut field = |last: bool| -> u64 {
        let mut value = 0u64;
        let mut i = 0;
        while i < rest.len() && rest[i].is_ascii_digit() {
            value = value * 10 + u64::from(rest[i] - b'0');
            i += 1;
        }
        if i == 0 {
            bad();
        }
        match (last, rest.get(i)) {
            (false, Some(b',')) => rest = &rest[i + 1..],
            (true, None | Some(b'\n' | b'\r')) => rest = &rest[i..],
            _ => bad(),
        }
        value
    };
    let auction = field(false);
    let price = field(false);
    let time = field(true);
    (auction, price, time as i64)
}

/// The lines starting in worker `index`'s byte range (of `peers`) of a file.
pub struct LineRange {
    reader: BufReader<std::fs::File>,
    pos: u64,
    end: u64,
}

impl LineRange {
    pub fn new(path: &Path, index: usize, peers: usize) -> Self {
        let mut file = std::fs::File::open(path).expect("open the input");
        let size = file.metadata().expect("input metadata").len();
        let (start, end) = (
            size * index as u64 / peers as u64,
            size * (index as u64 + 1) / peers as u64,
        );
        let mut pos = start;
        if start > 0 {
            file.seek(SeekFrom::Start(start - 1)).expect("seek");
            let mut r = BufReader::new(&mut file);
            let mut skip = Vec::new();
            pos = start - 1 + r.read_until(b'\n', &mut skip).expect("read") as u64;
        }
        file.seek(SeekFrom::Start(pos)).expect("seek");
        LineRange {
            reader: BufReader::with_capacity(1 << 16, file),
            pos,
            end,
        }
    }

    /// Reads the next line's bytes into `line`; false at the end of the range.
    pub fn next_bytes(&mut self, line: &mut Vec<u8>) -> bool {
        if self.pos >= self.end {
            return false;
        }
        let n = self.reader.read_until(b'\n', line).expect("read the input");
        self.pos += n as u64;
        n > 0
    }

    /// Reads the next line into `line`; false at the end of the range.
    pub fn next_into(&mut self, line: &mut String) -> bool {
        if self.pos >= self.end {
            return false;
        }
        let n = self.reader.read_line(line).expect("read the input");
        self.pos += n as u64;
        n > 0
    }
}

impl Iterator for LineRange {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        self.next_into(&mut line).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bid;

    #[test]
    fn bid_lines_parse_with_or_without_a_line_break() {
        assert_eq!(
            parse_bid(b"7,120,1700000000123\n"),
            (7, 120, 1_700_000_000_123)
        );
        assert_eq!(parse_bid(b"0,0,5"), (0, 0, 5));
        assert_eq!(parse_bid(b"1,2,3\r\n"), (1, 2, 3));
    }

    #[test]
    #[should_panic(expected = "not a bid line")]
    fn a_line_with_two_fields_is_refused() {
        parse_bid(b"1,2\n");
    }
}
