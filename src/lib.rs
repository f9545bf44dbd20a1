//! # Tidal
//!
//! Stream processing with Apache Flink's programming model — sources, transformations, keyed
//! state, sinks — on timely-dataflow, across threads and processes.
//!
//! `use tidal::prelude::*;` brings in the whole API:
//! - [`Job`] runs a pipeline on `-w` workers per process and `-n` processes ([`JobArgs`] are the
//!   standard flags; [`parse_args`] parses them next to a program's own).
//! - Sources on the [`Env`] handed to the build closure: `from_iter`, `generate`, `read(TextFiles |
//!   CsvFiles | JsonLinesFiles)`.
//! - Operators on [`DataStream`]: `map`, `flat_map`, `filter`, `inspect`, `union`, `key_by` / `keyed`,
//!   rolling `reduce` / `sum` / `min` / `max` / `count` / `min_by` / `max_by` / `aggregate`,
//!   `final_values`, `rebalance`, `shuffle`, `broadcast`, `name`.
//! - Sinks: `print`, `write_text`, `write_csv`, `write_jsonl`, `collect`.
//!
//! The crates underneath: [`engine`] (runtime, time, state), [`operators`] (the DataStream API),
//! [`connectors`] (sources and sinks), [`sql`] (Flink SQL scripts on them).
//!
//! ## Quick start
//! ```
//! use tidal::prelude::*;
//!
//! let text = vec!["the tide", "The sea, the tide!"];
//! let mut counts: Vec<(String, u64)> = Job::local(2)
//!     .run(move |env| {
//!         env.from_iter(text.clone())
//!             .flat_map(|line: &str| tidal::words(line).map(|w| (w, ())).collect::<Vec<_>>())
//!             .keyed()
//!             .count()
//!             .final_values()
//!             .collect()
//!     })
//!     .unwrap();
//! counts.sort();
//! assert_eq!(counts, vec![("sea".into(), 1), ("the".into(), 3), ("tide".into(), 2)]);
//! ```

pub use tidal_connectors as connectors;
pub use tidal_engine as engine;
pub use tidal_operators as operators;
/// Flink SQL scripts planned onto Tidal's operators ([`tidal_sql`]).
pub use tidal_sql as sql;

pub use tidal_engine::{
    Collected, DataStream, Env, Error, ErrorKind, Job, JobArgs, JobReport, Result, StopHandle,
    Time, parse_args, parse_args_from,
};

/// The `main` of a job's program: parses the flags into `A` (exiting with clap's message on a bad
/// one), runs `run`, and on an error prints `error: ...` and exits with status 1.
///
/// ```no_run
/// #[derive(clap::Parser)]
/// struct Args {
///     #[command(flatten)]
///     tidal: tidal::JobArgs,
/// }
/// fn main() -> std::process::ExitCode {
///     tidal::main_with(|args: Args| {
///         tidal::Job::new(&args.tidal)?.run(|_env| ())
///     })
/// }
/// ```
pub fn main_with<A: clap::Parser>(run: impl FnOnce(A) -> Result<()>) -> std::process::ExitCode {
    tidal_engine::log::init();
    match run(parse_args()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tidal_engine::log::line(tidal_engine::log::Level::Error, format_args!("error: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Everything needed to write a Tidal job: `use tidal::prelude::*;` and nothing else.
///
/// ```
/// use tidal::prelude::*;
/// // Timestamps, watermarks, windows and locations come with the prelude.
/// let strategy = WatermarkStrategy::bounded_out_of_orderness(std::time::Duration::from_secs(2))
///     .with_timestamps(|r: &(u32, Time)| r.1);
/// let _ = (strategy, Windows::tumbling(std::time::Duration::from_secs(10)));
/// let out: Location = "out/".parse().unwrap();
/// assert_eq!(out.to_string(), "out/");
/// ```
pub mod prelude {
    pub use tidal_connectors::prelude::*;
    pub use tidal_engine::storage::Location;
    pub use tidal_engine::{
        CheckpointConfig, Collected, DataStream, Env, Job, JobArgs, JobClock, ManualClock, Restore,
        StopHandle, Time, WatermarkGenerator, WatermarkStrategy,
    };
    pub use tidal_operators::prelude::*;
}

/// The words of `text` as Tidal's word count defines them: maximal runs of Unicode alphanumeric
/// characters (`char::is_alphanumeric`), lowercased.
///
/// ```
/// let words: Vec<String> = tidal::words("Été, l'ÉTÉ! x2").collect();
/// assert_eq!(words, vec!["été", "l", "été", "x2"]);
/// ```
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (start, end, ascii, _) = next_word(text, pos)?;
        pos = end;
        Some(lowercase(&text[start..end], ascii))
    })
}

/// The words of an owned line, as an iterator that owns it (no copy of the line is made): the same
/// words as [`words`], for use in `flat_map` over owned lines.
///
/// ```
/// let words: Vec<String> = tidal::into_words("Tide, TIDE".to_string()).collect();
/// assert_eq!(words, vec!["tide", "tide"]);
/// ```
pub fn into_words(line: String) -> IntoWords {
    IntoWords { line, pos: 0 }
}

/// Iterator returned by [`into_words`].
pub struct IntoWords {
    line: String,
    pos: usize,
}

impl Iterator for IntoWords {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        let (start, end, ascii, _) = next_word(&self.line, self.pos)?;
        self.pos = end;
        Some(lowercase(&self.line[start..end], ascii))
    }
}

/// A word as a key: a string kept inline, without a heap allocation, when it is at most 24 bytes
/// long (nearly every word), and compared without following a pointer.
pub type Word = compact_str::CompactString;

/// The words of an owned line as [`Word`]s (the same words as [`words`]): splitting a line into
/// keys allocates only for words longer than 24 bytes.
///
/// ```
/// let words: Vec<tidal::Word> = tidal::into_word_keys("Tide, TIDE".to_string()).collect();
/// assert_eq!(words, vec!["tide", "tide"]);
/// ```
pub fn into_word_keys(line: String) -> impl Iterator<Item = Word> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (start, end, ascii, upper) = next_word(&line, pos)?;
        pos = end;
        let word = &line[start..end];
        Some(if ascii {
            let mut w = Word::from(word);
            if upper {
                w.make_ascii_lowercase();
            }
            w
        } else {
            Word::from(word.to_lowercase())
        })
    })
}

/// Calls `f` with each word of `line` (the same words as [`words`]) without allocating per word:
/// a word already in lowercase is passed where it lies in `line`, others are lowercased into
/// `scratch` (reuse it across lines). For counting into a map that is looked up by `&str`.
///
/// ```
/// let (mut seen, mut scratch) = (Vec::new(), String::new());
/// tidal::for_each_word("Été, l'ÉTÉ! x2", &mut scratch, |w| seen.push(w.to_string()));
/// assert_eq!(seen, vec!["été", "l", "été", "x2"]);
/// ```
pub fn for_each_word(line: &str, scratch: &mut String, mut f: impl FnMut(&str)) {
    let buf = scratch;
    let mut pos = 0;
    while let Some((start, end, ascii, upper)) = next_word(line, pos) {
        pos = end;
        let word = &line[start..end];
        if ascii {
            if upper {
                buf.clear();
                buf.push_str(word);
                buf.make_ascii_lowercase();
                f(buf);
            } else {
                f(word);
            }
        } else {
            buf.clear();
            buf.push_str(&word.to_lowercase());
            f(buf);
        }
    }
}

/// How a byte takes part in a word: not at all (an ASCII byte that is not a letter or a digit),
/// as an ASCII letter or digit (upper case apart), or as part of a multi-byte character, which is
/// decoded to decide.
const SEPARATOR: u8 = 0;
const ASCII_WORD: u8 = 1;
const ASCII_UPPER: u8 = 2;
const NON_ASCII: u8 = 3;

/// The class of every byte value (see [`SEPARATOR`] and the others).
static BYTE_CLASS: [u8; 256] = {
    let mut class = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        class[b] = if byte.is_ascii_uppercase() {
            ASCII_UPPER
        } else if byte.is_ascii_alphanumeric() {
            ASCII_WORD
        } else {
            SEPARATOR
        };
        b += 1;
    }
    class
};

/// The high bit of each of eight bytes.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Of the eight bytes of `x` (the first lowest), those that are ASCII letters or digits, and those
/// that are ASCII capitals: the high bit of each such byte set, all else clear.
fn ascii_word_bytes(x: u64) -> (u64, u64) {
    const fn each(b: u8) -> u64 {
        u64::from_le_bytes([b; 8])
    }
    // Over the low seven bits of each byte, so that no sum carries into the next byte: the high
    // bit of `a + (0x80 - lo)` is set where the byte is at least `lo`, that of `a + (0x7F - hi)`
    // where it is above `hi`.
    let a = x & !HIGH_BITS;
    let within = |lo: u8, hi: u8| (a + each(0x80 - lo)) & !(a + each(0x7F - hi));
    let ascii = !x & HIGH_BITS;
    let capitals = within(b'A', b'Z') & ascii;
    let word = (within(b'a', b'z') | within(b'0', b'9')) & ascii | capitals;
    (word, capitals)
}

/// The next word of `line` at or after byte `pos`: its byte range, whether it is all ASCII and
/// whether it has an ASCII capital. ASCII bytes are classified by a table, without decoding.
fn next_word(line: &str, pos: usize) -> Option<(usize, usize, bool, bool)> {
    let bytes = line.as_bytes();
    // Skip to the first alphanumeric character.
    let mut i = pos;
    let start = loop {
        let &b = bytes.get(i)?;
        let class = BYTE_CLASS[b as usize];
        if class == SEPARATOR {
            i += 1;
            continue;
        }
        match class {
            NON_ASCII => {
                let c = line[i..].chars().next().expect("i is at a char boundary");
                if c.is_alphanumeric() {
                    break i;
                }
                i += c.len_utf8();
            }
            _ => break i,
        }
    };
    // Find the end of the word, noting whether it is all ASCII and has a capital.
    let (mut ascii, mut upper) = (true, false);
    let mut end = start;
    // Eight bytes at a time while they are ASCII letters and digits: most words end within the
    // first eight, found without a branch per byte (the byte loop below mispredicted at the end
    // of nearly every word). The byte that ends the run is left to the loop below.
    while let Some(chunk) = bytes.get(end..end + 8) {
        let (word, capitals) =
            ascii_word_bytes(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        let stop = !word & HIGH_BITS;
        if stop == 0 {
            upper |= capitals != 0;
            end += 8;
            continue;
        }
        let run = stop.trailing_zeros() / 8;
        upper |= capitals & ((1u64 << (8 * run)) - 1) != 0;
        end += run as usize;
        break;
    }
    while let Some(&b) = bytes.get(end) {
        let class = BYTE_CLASS[b as usize];
        // The common case first, without a jump table: an ASCII letter or digit.
        if class == ASCII_WORD || class == ASCII_UPPER {
            upper |= class == ASCII_UPPER;
            end += 1;
            continue;
        }
        match class {
            SEPARATOR => break,
            _ => {
                let c = line[end..]
                    .chars()
                    .next()
                    .expect("end is at a char boundary");
                if !c.is_alphanumeric() {
                    break;
                }
                ascii = false;
                end += c.len_utf8();
            }
        }
    }
    Some((start, end, ascii, upper))
}

/// A word lowercased (`ascii`: it is all ASCII, so no Unicode case mapping is needed).
fn lowercase(word: &str, ascii: bool) -> String {
    if ascii {
        word.to_ascii_lowercase()
    } else {
        word.to_lowercase()
    }
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    /// Every byte value, at every position among neighbours of every kind, is classified as
    /// `is_ascii_alphanumeric` / `is_ascii_uppercase` say.
    #[test]
    fn eight_bytes_are_classified_at_once() {
        for b in 0..=255u8 {
            for neighbour in [0u8, b'0', b'z', b'Z', 0x7F, 0x80, 0xFF, b' '] {
                for at in 0..8 {
                    let mut bytes = [neighbour; 8];
                    bytes[at] = b;
                    let (word, capitals) = super::ascii_word_bytes(u64::from_le_bytes(bytes));
                    for (i, c) in bytes.iter().enumerate() {
                        let bit = |m: u64| m >> (8 * i + 7) & 1 == 1;
                        assert_eq!(bit(word), c.is_ascii_alphanumeric(), "{bytes:?} {i}");
                        assert_eq!(bit(capitals), c.is_ascii_uppercase(), "{bytes:?} {i}");
                    }
                }
            }
        }
    }

    /// The three word splitters agree on text mixing cases, accents, digits, punctuation and
    /// letters whose lowercase differs in length ('İ') or depends on context ('Σ').
    #[test]
    fn word_splitters_agree() {
        let alphabet: Vec<char> = "aZq9 ,.'-\t\u{e9}\u{c9}\u{130}\u{3a3}\u{3c3}\u{df}\u{4e2d}_!X"
            .chars()
            .collect();
        let mut rng = SmallRng::seed_from_u64(5);
        let mut scratch = String::new();
        // Long words (read eight bytes at a time) with capitals and other characters at and
        // around every eighth byte, then random lines of mostly short words.
        let long = [
            "TIDALWAVE tidalwaVE tidalwAve! x",
            "0123456789ABCDEFGHIJ abcdefghijklmnopqrsTuv",
            "abcdefgh\u{e9}ijkl abcdefgH abcdefgh- ABCDEFG\u{c9}",
        ];
        let random = (0..2000).map(|_| {
            let len = rng.random_range(0..40);
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect::<String>()
        });
        for line in long.iter().map(|l| l.to_string()).chain(random) {
            let expected: Vec<String> = line
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| w.to_lowercase())
                .collect();
            assert_eq!(
                super::words(&line).collect::<Vec<_>>(),
                expected,
                "{line:?}"
            );
            assert_eq!(
                super::into_words(line.clone()).collect::<Vec<_>>(),
                expected,
                "{line:?}"
            );
            assert_eq!(
                super::into_word_keys(line.clone()).collect::<Vec<_>>(),
                expected,
                "{line:?}"
            );
            let mut each = Vec::new();
            super::for_each_word(&line, &mut scratch, |w| each.push(w.to_string()));
            assert_eq!(each, expected, "{line:?}");
        }
    }
}
