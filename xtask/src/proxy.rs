//! A counting HTTP proxy on loopback, put between the AWS clients and the emulator so a benchmark
//! counts API requests by kind where they arrive, whatever client sends them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Request counts keyed `service:Action` (query and JSON protocols) or `service:METHOD kind`
/// (REST protocols, e.g. `s3:GET ?versioning`).
pub type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Starts the proxy in front of `127.0.0.1:upstream`; returns its port and the live counts.
pub fn start(upstream: u16) -> std::io::Result<(u16, Counts)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let counts: Counts = Arc::default();
    let shared = counts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let counts = shared.clone();
            std::thread::spawn(move || {
                let _ = serve(client, upstream, &counts);
            });
        }
    });
    Ok((port, counts))
}

struct Message {
    head: String,
    body: Vec<u8>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.1 message (head and body by Content-Length or chunked framing).
fn read_message(r: &mut impl BufRead, no_body: bool) -> std::io::Result<Option<Message>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    if no_body {
    } else if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        // Keep the chunked framing as is; only find its end.
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    }
    Ok(Some(Message { head, body }))
}

fn kind(req: &Message) -> String {
    let service = header(&req.head, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown");
    if let Some(target) = header(&req.head, "x-amz-target") {
        return format!("{service}:{}", target.rsplit('.').next().unwrap_or(target));
    }
    let body = String::from_utf8_lossy(&req.body);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return format!("{service}:{action}");
    }
    let mut words = req.head.split_whitespace();
    let method = words.next().unwrap_or("?");
    let target = words.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: Vec<&str> = query
        .split('&')
        .filter(|q| !q.is_empty() && !q.contains('='))
        .collect();
    let shape = if query.is_empty() {
        // Keep the path's shape, not its names: /2015-03-31/functions/NAME -> /2015-03-31/functions/*
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut shaped: Vec<&str> = parts.iter().take(2).copied().collect();
        if parts.len() > 2 {
            shaped.push("*");
        }
        format!("/{}", shaped.join("/"))
    } else {
        format!("?{}", query.join("&"))
    };
    format!("{service}:{method} {shape}")
}

fn serve(client: TcpStream, upstream: u16, counts: &Counts) -> std::io::Result<()> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut up_reader = BufReader::new(up.try_clone()?);
    let mut client_reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    while let Some(req) = read_message(&mut client_reader, false)? {
        *counts
            .lock()
            .expect("counts")
            .entry(kind(&req))
            .or_default() += 1;
        up.write_all(req.head.as_bytes())?;
        up.write_all(&req.body)?;
        let is_head = req.head.starts_with("HEAD ");
        let Some(resp) = read_message(&mut up_reader, is_head)? else {
            break;
        };
        client.write_all(resp.head.as_bytes())?;
        client.write_all(&resp.body)?;
    }
    Ok(())
}
