//! A small HTTP/1.1 service on loopback for the async I/O tests: `GET /auction/ID` answers
//! `auction-ID` after a short random delay; it can fail each id's first request (503), hold some
//! ids past a timeout, and it counts the requests under way at once.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the service does besides answering.
#[derive(Default, Clone)]
pub struct Behaviour {
    /// Answer each id's first request with 503.
    pub fail_first: bool,
    /// Ids answered only after this long.
    pub slow: Option<(HashSet<u64>, Duration)>,
}

/// A running service (it runs until the test process ends).
pub struct Service {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub most_at_once: Arc<AtomicUsize>,
}

pub fn start(behaviour: Behaviour) -> Service {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let (r, m) = (Arc::clone(&requests), Arc::clone(&most_at_once));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (r, m, now, seen, behaviour) = (
                Arc::clone(&r),
                Arc::clone(&m),
                Arc::clone(&now),
                Arc::clone(&seen),
                behaviour.clone(),
            );
            std::thread::spawn(move || {
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(at_once, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = reader.read_line(&mut line);
                // The rest of the request head.
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let id: u64 = line
                    .split(' ')
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/auction/"))
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(u64::MAX);
                // A short delay that differs per request, so that calls finish out of order.
                let mut delay = Duration::from_micros(id.wrapping_mul(7919) % 3000);
                if let Some((ids, long)) = &behaviour.slow
                    && ids.contains(&id)
                {
                    delay = *long;
                }
                std::thread::sleep(delay);
                let first = seen.lock().unwrap().insert(id);
                let response = if behaviour.fail_first && first {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_string()
                } else {
                    let body = format!("auction-{id}\n");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
                now.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Service {
        url,
        requests,
        most_at_once,
    }
}
