//! A real S3-compatible server for tests (`moto_server`, from the Python package `moto[server]`,
//! which `.ci/run` installs), on a free loopback port, and a proxy in front of it that can make the
//! server unreachable for a while (an outage) without losing what it stores.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A running `moto_server` with one bucket; stopped when dropped.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl S3Server {
    /// Starts a server and creates `bucket` in it.
    pub fn start(bucket: &str) -> S3Server {
        let address = super::free_addresses(1).remove(0);
        let port = address.rsplit_once(':').unwrap().1.to_string();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): the S3 tests need it; install it with \
                     `pip install 'moto[server]'` (.ci/run does)"
                )
            });
        let server = S3Server {
            child,
            endpoint: format!("http://{address}"),
            address,
        };
        // Ready when it answers; it takes a second or two to start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(status) = server.request("PUT", &format!("/{bucket}"))
                && status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Stores `body` as the object `/bucket/key`.
    pub fn put(&self, path: &str, body: &[u8]) {
        let status = self.request_with("PUT", path, body).unwrap();
        assert_eq!(status, 200, "PUT {path}");
    }

    /// Sends a bare HTTP request (moto does not check signatures) and returns the status code.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        self.request_with(method, path, b"")
    }

    fn request_with(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(&self.address)?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        )?;
        stream.write_all(body)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {response:.80}")))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on a free loopback port that forwards to `upstream`, until [`Outage::begin`]:
/// from then on it cuts every open connection and closes new ones at once, as an unreachable
/// server would, until [`Outage::end`].
pub struct Outage {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub endpoint: String,
    down: Arc<AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl Outage {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn proxy(upstream: &str) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (d, r, upstream) = (down.clone(), refused.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    r.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    d.clone(),
                );
                pump(server, client, d.clone());
            }
        });
        Outage {
            endpoint,
            down,
            refused,
        }
    }

    /// How many connections were turned away during outages so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The server becomes unreachable (open connections are cut within 50 ms).
    pub fn begin(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// The server is reachable again.
    pub fn end(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes or an outage begins.
fn pump(mut from: TcpStream, mut to: TcpStream, down: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        from.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if down.load(Ordering::SeqCst) {
                break;
            }
            match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
