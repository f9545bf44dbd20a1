//! Cluster start-up: the hostfile, and connecting the processes of a job to each other.
//!
//! timely connects processes by retrying forever; Tidal makes the connections itself, with a
//! deadline, a handshake that checks every process was started with the same shape (-n, -w), and
//! errors that name the address or the missing processes, then hands the sockets to timely.
//!
//! With a cluster secret (`--cluster-secret-file`, or `TIDAL_CLUSTER_SECRET`), every connection
//! must also prove it knows the secret (see [`ClusterSecret`]) before timely gets it; a stranger
//! is refused, logged, and the process goes on waiting for its real peers. Without one, any
//! program that reaches a process's port during start-up can join the handshake.

mod auth;
pub mod supervise;

pub use auth::ClusterSecret;

use std::collections::BTreeSet;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The addresses of a job's processes, read from a hostfile.
///
/// One `host:port` per line, in process order; blank lines and `#` comments are ignored.
///
/// ```
/// let hosts = tidal_engine::Hostfile::parse("# two processes\n127.0.0.1:2101\n\n127.0.0.1:2102 # second\n", "inline")
///     .unwrap();
/// assert_eq!(hosts.addresses, vec!["127.0.0.1:2101", "127.0.0.1:2102"]);
/// let err = tidal_engine::Hostfile::parse("127.0.0.1\n", "hosts.txt").unwrap_err();
/// assert!(err.to_string().contains("hosts.txt line 1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostfile {
    /// One `host:port` per process.
    pub addresses: Vec<String>,
}

impl Hostfile {
    /// Reads and parses the hostfile at `path`.
    pub fn read(path: &Path) -> Result<Hostfile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read hostfile '{}': {e}", path.display()))
        })?;
        Hostfile::parse(&text, &format!("'{}'", path.display()))
    }

    /// Parses hostfile text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Hostfile> {
        let mut addresses = Vec::new();
        for (number, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| {
                Error::config(format!(
                    "hostfile {origin} line {}: '{line}' {why} (expected host:port, e.g. 127.0.0.1:2101)",
                    number + 1
                ))
            };
            if line.split_whitespace().count() > 1 {
                return Err(bad("has more than one address"));
            }
            let Some((host, port)) = line.rsplit_once(':') else {
                return Err(bad("has no port"));
            };
            if host.is_empty() {
                return Err(bad("has no host"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad("has no valid port (1-65535)")),
            }
            addresses.push(line.to_string());
        }
        if addresses.is_empty() {
            return Err(Error::config(format!("hostfile {origin} names no process")));
        }
        Ok(Hostfile { addresses })
    }
}

/// Everything needed to start one process of a job.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Worker threads in each process.
    pub workers: usize,
    /// This process's index.
    pub process: usize,
    /// One `host:port` per process.
    pub addresses: Vec<String>,
    /// How long to wait for all processes to connect.
    pub connect_timeout: Duration,
    /// The secret every process must prove it knows (none: any process may join).
    pub secret: Option<ClusterSecret>,
}

impl ClusterSpec {
    /// A single process with `workers` threads.
    pub fn local(workers: usize) -> ClusterSpec {
        ClusterSpec {
            workers,
            process: 0,
            addresses: vec!["localhost:2101".into()],
            connect_timeout: Duration::from_secs(30),
            secret: None,
        }
    }
    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }
}

const MAGIC: &[u8; 8] = b"TIDAL\x00\x03\x00";
/// Length of the hello: magic, processes, workers, run id, whether a secret is used.
const HELLO: usize = 25;
/// How long one incoming handshake may take (a stranger that sends nothing is dropped then).
const HANDSHAKE: Duration = Duration::from_secs(5);

/// Connects this process to every other one, within the spec's deadline.
///
/// Returns one socket per process in process order (`None` at this process's index), each already
/// past timely's own handshake (the connecting process's index as a big-endian u64).
/// Also returns the run id of process 0, which every process adopts (see [`fresh_run_id`]).
pub(crate) fn connect(spec: &ClusterSpec) -> Result<(Vec<Option<TcpStream>>, u64)> {
    let me = spec.process;
    let n = spec.processes();
    let deadline = Instant::now() + spec.connect_timeout;
    let my_address = &spec.addresses[me];
    let bind_to = resolve(my_address, me)?;
    let listener = TcpListener::bind(bind_to).map_err(|e| {
        let hint = if e.kind() == IoKind::AddrInUse {
            "; another program (or another Tidal job) uses it: stop it or pick another port in the hostfile"
        } else {
            ""
        };
        Error::config(format!("process {me} cannot listen on {my_address}: {e}{hint}"))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::external(format!("listener on {my_address}: {e}")))?;

    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut pending_connect: BTreeSet<usize> = (0..me).collect();
    let mut pending_accept: BTreeSet<usize> = (me + 1..n).collect();
    let own_run = fresh_run_id();
    let mut run = own_run;
    let hello = hello_bytes(spec, own_run);
    let mut last_connect_error: Option<String> = None;

    while !pending_connect.is_empty() || !pending_accept.is_empty() {
        let mut progressed = false;
        // Connect to every lower-numbered process that is not yet connected.
        for &peer in pending_connect.clone().iter() {
            let address = resolve(&spec.addresses[peer], peer)?;
            match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
                Ok(mut stream) => {
                    let theirs = handshake_out(&mut stream, spec, me, peer, &hello, deadline)?;
                    if peer == 0 {
                        run = theirs;
                    }
                    finish_socket(&stream)?;
                    sockets[peer] = Some(stream);
                    pending_connect.remove(&peer);
                    progressed = true;
                }
                Err(e) => last_connect_error = Some(format!("{}: {e}", spec.addresses[peer])),
            }
        }
        // Accept every higher-numbered process that has connected to us.
        loop {
            match listener.accept() {
                Ok((mut stream, from)) => {
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| Error::external(format!("socket from {from}: {e}")))?;
                    match handshake_in(&mut stream, spec, &pending_accept, &hello, deadline) {
                        Ok(peer) => {
                            finish_socket(&stream)?;
                            sockets[peer] = Some(stream);
                            pending_accept.remove(&peer);
                            progressed = true;
                        }
                        // With a secret, whoever fails the handshake is refused and the
                        // process goes on waiting for its peers; without one, as before.
                        Err(e) if spec.secret.is_some() => crate::warn(format_args!(
                            "tidal: process {me} refused a connection from {from}: {e}"
                        )),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(e) => return Err(Error::external(format!("accepting on {my_address}: {e}"))),
            }
        }
        if pending_connect.is_empty() && pending_accept.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<String> = pending_connect
                .iter()
                .chain(pending_accept.iter())
                .map(|p| format!("{p} ({})", spec.addresses[*p]))
                .collect();
            let detail = last_connect_error
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            return Err(Error::external(format!(
                "process {me} gave up after {:?} waiting for process{} {} to connect{detail}; \
                 start every process with the same -n and hostfile (each with its own -p), or raise --connect-timeout",
                spec.connect_timeout,
                if missing.len() == 1 { "" } else { "es" },
                missing.join(", "),
            )));
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok((sockets, run))
}

/// A fresh id for a run of a job: random, so that the runs of a job (a restart, a restore) tell
/// their files apart. Process 0 draws it and hands it to the others in the handshake.
pub(crate) fn fresh_run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the operating system's randomness once per process; mixing in
    // the time and the process id keeps ids apart across processes and calls.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn resolve(address: &str, process: usize) -> Result<SocketAddr> {
    address
        .to_socket_addrs()
        .map_err(|e| {
            Error::config(format!(
                "address of process {process} '{address}' does not resolve: {e}"
            ))
        })?
        .next()
        .ok_or_else(|| {
            Error::config(format!(
                "address of process {process} '{address}' does not resolve"
            ))
        })
}

fn hello_bytes(spec: &ClusterSpec, run: u64) -> Vec<u8> {
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&(spec.processes() as u32).to_be_bytes());
    hello.extend_from_slice(&(spec.workers as u32).to_be_bytes());
    hello.extend_from_slice(&run.to_be_bytes());
    hello.push(u8::from(spec.secret.is_some()));
    hello
}

/// Connecting to `peer`: index, hello (and with a secret a nonce); the peer's hello (and its
/// nonce and proof, checked; then ours). Returns the peer's run id.
fn handshake_out(
    stream: &mut TcpStream,
    spec: &ClusterSpec,
    me: usize,
    peer: usize,
    hello: &[u8],
    deadline: Instant,
) -> Result<u64> {
    let address = &spec.addresses[peer];
    let io = |e: std::io::Error| {
        Error::external(format!("handshake with process {peer} at {address}: {e}"))
    };
    let index = (me as u64).to_be_bytes();
    let mine = match &spec.secret {
        Some(_) => Some(auth::nonce()?),
        None => None,
    };
    let mut out = index.to_vec();
    out.extend_from_slice(hello);
    out.extend(mine.iter().flatten());
    stream.write_all(&out).map_err(io)?;
    let run = check_hello(stream, spec, peer, deadline)?;
    if let (Some(secret), Some(mine)) = (&spec.secret, mine) {
        let mut theirs = [0u8; auth::LEN];
        let mut proof = [0u8; auth::LEN];
        stream
            .read_exact(&mut theirs)
            .and_then(|_| stream.read_exact(&mut proof))
            .map_err(io)?;
        if !secret.verify(b"tidal accept", &[&index, &mine, &theirs], &proof) {
            return Err(Error::config(format!(
                "process {peer} at {address} does not know this job's cluster secret: start every process with the same --cluster-secret-file (or TIDAL_CLUSTER_SECRET)"
            )));
        }
        let answer = secret.mac(b"tidal connect", &[&index, &theirs, &mine]);
        stream.write_all(&answer).map_err(io)?;
    }
    Ok(run)
}

/// Accepting a connection: the connector's index and hello (and with a secret its nonce); our
/// hello (and nonce and proof; then its proof, checked). Returns the connector's index.
fn handshake_in(
    stream: &mut TcpStream,
    spec: &ClusterSpec,
    expected: &BTreeSet<usize>,
    hello: &[u8],
    deadline: Instant,
) -> Result<usize> {
    let me = spec.process;
    let deadline = deadline.min(Instant::now() + HANDSHAKE);
    set_read_deadline(stream, deadline)?;
    let mut index = [0u8; 8];
    stream
        .read_exact(&mut index)
        .map_err(|e| Error::external(format!("it sent no process index ({e})")))?;
    let peer = u64::from_be_bytes(index) as usize;
    if !expected.contains(&peer) {
        return Err(Error::config(format!(
            "process {me} was contacted by a process calling itself {peer}, which it does not expect \
             (duplicate -p, or processes started with different hostfiles)"
        )));
    }
    let checked = check_hello(stream, spec, peer, deadline);
    // Our hello goes back even when theirs was wrong, so that they can say what differs.
    stream
        .write_all(hello)
        .map_err(|e| Error::external(format!("handshake with process {peer}: {e}")))?;
    checked?;
    if let Some(secret) = &spec.secret {
        let io = |e: std::io::Error| Error::external(format!("handshake with process {peer}: {e}"));
        let mut theirs = [0u8; auth::LEN];
        stream.read_exact(&mut theirs).map_err(io)?;
        let mine = auth::nonce()?;
        let proof = secret.mac(b"tidal accept", &[&index, &theirs, &mine]);
        let mut out = mine.to_vec();
        out.extend_from_slice(&proof);
        stream.write_all(&out).map_err(io)?;
        let mut answer = [0u8; auth::LEN];
        stream.read_exact(&mut answer).map_err(|e| {
            Error::config(format!(
                "it calls itself process {peer} but did not prove that it knows the cluster secret (it closed the connection: {e})"
            ))
        })?;
        if !secret.verify(b"tidal connect", &[&index, &mine, &theirs], &answer) {
            return Err(Error::config(format!(
                "it calls itself process {peer} but does not know the cluster secret"
            )));
        }
    }
    Ok(peer)
}

fn check_hello(
    stream: &mut TcpStream,
    spec: &ClusterSpec,
    peer: usize,
    deadline: Instant,
) -> Result<u64> {
    set_read_deadline(stream, deadline)?;
    let mut hello = [0u8; HELLO];
    stream.read_exact(&mut hello).map_err(|e| {
        Error::external(format!(
            "process {peer} at {} did not complete Tidal's handshake ({e}); is something else listening there?",
            spec.addresses[peer]
        ))
    })?;
    if &hello[..8] != MAGIC {
        return Err(Error::config(format!(
            "process {peer} at {} is not a Tidal process of the same version",
            spec.addresses[peer]
        )));
    }
    let processes = u32::from_be_bytes(hello[8..12].try_into().unwrap()) as usize;
    let workers = u32::from_be_bytes(hello[12..16].try_into().unwrap()) as usize;
    if processes != spec.processes() || workers != spec.workers {
        return Err(Error::config(format!(
            "process {peer} was started with -n {processes} -w {workers} but process {} with -n {} -w {}: \
             start every process with the same flags",
            spec.process,
            spec.processes(),
            spec.workers
        )));
    }
    match (hello[24] == 1, spec.secret.is_some()) {
        (true, false) => {
            return Err(Error::config(format!(
                "process {peer} at {} uses a cluster secret and process {} does not: start every process with the same --cluster-secret-file (or TIDAL_CLUSTER_SECRET)",
                spec.addresses[peer], spec.process
            )));
        }
        (false, true) => {
            return Err(Error::config(format!(
                "process {peer} at {} was started without the cluster secret that process {} uses: start every process with the same --cluster-secret-file (or TIDAL_CLUSTER_SECRET)",
                spec.addresses[peer], spec.process
            )));
        }
        _ => {}
    }
    Ok(u64::from_be_bytes(hello[16..24].try_into().unwrap()))
}

fn set_read_deadline(stream: &TcpStream, deadline: Instant) -> Result<()> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| Error::external(format!("socket: {e}")))
}

fn finish_socket(stream: &TcpStream) -> Result<()> {
    stream
        .set_read_timeout(None)
        .and_then(|_| stream.set_nodelay(true))
        .map_err(|e| Error::external(format!("socket: {e}")))
}
