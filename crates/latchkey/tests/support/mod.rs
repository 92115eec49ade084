//! A real `latchkey serve` process on 127.0.0.1 for integration tests, and an aws-sdk-s3 client
//! pointed at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ACCESS_KEY: &str = "LKRUSTTESTACCESSKEY1";
pub const SECRET_KEY: &str = "rust-test-secret-key-long-enough-0123456";

pub struct Server {
    child: Child,
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            .env("LATCHKEY_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("LATCHKEY_ROOT_SECRET_KEY", SECRET_KEY)
            .env("RUST_LOG", "warn,s3s=off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn latchkey");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines.next().expect("latchkey exited before listening").expect("read stdout");
            if let Some(url) = line.strip_prefix("latchkey listening on ") {
                break url.to_owned();
            }
        };
        Self { child, endpoint, _data: data }
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A plain HTTP/1.0 GET (no SDK, no signing of its own); returns status and body.
    pub fn http_get(&self, url: &str) -> (u16, Vec<u8>) {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_at(rest.find('/').expect("path"));
        let mut stream = TcpStream::connect(host).expect("connect");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
        let status = std::str::from_utf8(&raw[9..12]).expect("status").parse().expect("status code");
        (status, raw[split + 4..].to_vec())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
