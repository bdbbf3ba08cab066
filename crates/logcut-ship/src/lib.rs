/*!
Ships [logcut](https://docs.rs/logcut)'s sealed segments to S3-compatible
object storage (AWS S3, MinIO, Ceph RGW, ... through the `object_store`
crate), and checks a bucket against a log's manifest.

# Overview

[`S3Shipper`] is a [`logcut::Ship`] uploader: give it to
[`AppenderBuilder::ship`](logcut::AppenderBuilder::ship) and every sealed
segment (once indexed and compressed, as configured) is uploaded on the
appender's compression threads, checked, and recorded in the manifest with
its key, entity tag and SHA-256; retention never deletes a segment before
that (see the `logcut` docs). [`S3Shipper::verify_remote`] compares what a
log's manifest says was shipped with what the bucket holds.

# Quick start

```no_run
use std::sync::Arc;
let shipper = logcut_ship::S3Shipper::builder("s3://logs-bucket/prod")
    .endpoint("http://127.0.0.1:9000") // MinIO; leave out for AWS
    .path_style(true)
    .build()?;
let appender = logcut::Appender::builder()
    .dir("/var/log/app")
    .compress(logcut::Compression::zstd())
    .ship(Arc::new(shipper))
    .build()?;
# Ok::<(), Box<dyn std::error::Error>>(())
```

# Keys, credentials, configuration

A segment's key is [`DEFAULT_TEMPLATE`] (`{prefix}/{host}/{path}/{date}/{file}`,
for example `prod/web-1/app/2026/12/03/app.2026-12-03T10-00-00.000Z.000042.log.zst`)
unless [`S3Builder::template`] says otherwise; `{path}` is the log
directory relative to [`S3Builder::base_dir`] (a router's root gives
`group/tenant`), or its last component. The same segment always gets the
same key, so an upload made again after a crash writes the same object.

Credentials come only from the standard sources, through `object_store`:
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`),
web identity, container and instance metadata. They are never written to
the manifest, errors or metrics. `AWS_ENDPOINT_URL`, `AWS_REGION` and
`AWS_ALLOW_HTTP=true` (a plain-HTTP server, such as one on loopback) are
read too; the builder's settings win over them.

# Guarantees

- An object is recorded as shipped only once the server has it whole:
  after the upload, its length is read back (`HEAD`) and compared; its
  SHA-256 and CRC-32 go with it as metadata (`x-amz-meta-logcut-sha256`,
  `-crc32`), which [`S3Shipper::verify_remote`] checks against the bytes.
- Requests are retried by `object_store` (exponential backoff with jitter,
  at most [`S3Builder::retries`] times within 30 s); past that the upload
  fails, and logcut tries the segment again after its own backoff.
- Segments over [`S3Builder::multipart_from`] (64 MiB) are uploaded in
  parts of 16 MiB.

# Known problems

- The uploader runs two threads of its own (a `tokio` runtime for the
  network), besides logcut's runtime.
- An upload under way when the appender shuts down is waited for (up to
  the retry limit), not cancelled.
*/

#![deny(missing_docs)]

mod key;
mod remote;

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ObjectStore, ObjectStoreExt as _,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path as Key,
};

pub use crate::key::DEFAULT_TEMPLATE;
pub use crate::remote::{RemoteProblem, RemoteProblemKind, RemoteReport};

/// The metadata names of an object's hashes.
const META_SHA256: &str = "logcut-sha256";
const META_CRC32: &str = "logcut-crc32";

/// An error building a shipper or talking to the bucket. Its message names
/// the operation and the bucket or key, never a credential.
#[derive(Debug)]
pub struct Error {
    op: &'static str,
    what: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    fn new(
        op: &'static str,
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error {
            op,
            what: what.into(),
            source: source.into(),
        }
    }

    /// Whether the settings were wrong (a URL, a template), not the bucket.
    pub fn is_config(&self) -> bool {
        self.op == "configure"
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot {} {}: {}", self.op, self.what, self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Builds an [`S3Shipper`].
///
/// | setting | default |
/// |---|---|
/// | [`endpoint`](Self::endpoint) | `AWS_ENDPOINT_URL`, else AWS |
/// | [`region`](Self::region) | `AWS_REGION`, else `us-east-1` |
/// | [`allow_http`](Self::allow_http) | `AWS_ALLOW_HTTP`, else no |
/// | [`path_style`](Self::path_style) | no (virtual-hosted style) |
/// | [`template`](Self::template) | [`DEFAULT_TEMPLATE`] |
/// | [`base_dir`](Self::base_dir) | none |
/// | [`host`](Self::host) | this machine's host name |
/// | [`retries`](Self::retries) | 5 |
/// | [`multipart_from`](Self::multipart_from) | 64 MiB |
#[derive(Debug, Clone)]
#[must_use]
pub struct S3Builder {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    path_style: bool,
    template: String,
    base: Option<PathBuf>,
    host: Option<String>,
    retries: usize,
    multipart_from: u64,
}

impl S3Builder {
    /// The server's URL (`http://127.0.0.1:9000` for a MinIO on loopback).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The bucket's region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Allow a plain-HTTP endpoint (only for a server on a trusted
    /// network, such as loopback).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }

    /// Address the bucket in the path (`http://host/bucket/key`), as
    /// MinIO-style servers want, rather than in the host name.
    pub fn path_style(mut self, on: bool) -> Self {
        self.path_style = on;
        self
    }

    /// The key template: `{prefix}`, `{host}`, `{path}`, `{log}`, `{date}`
    /// (`YYYY/MM/DD` of the segment's start, UTC), `{file}` and `{seq}`;
    /// it must hold `{file}` or `{seq}`.
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.template = template.into();
        self
    }

    /// `{path}` is the log directory relative to this one.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base = Some(dir.into());
        self
    }

    /// `{host}`: this machine's name by default.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// How many times a request is retried before an upload fails.
    pub fn retries(mut self, n: usize) -> Self {
        self.retries = n;
        self
    }

    /// Segments of at least this many bytes are uploaded in parts.
    pub fn multipart_from(mut self, bytes: u64) -> Self {
        self.multipart_from = bytes;
        self
    }

    /// Checks the settings and makes the client (no request is made yet).
    pub fn build(self) -> Result<S3Shipper, Error> {
        let conf = |e: String| Error::new("configure", &self.url, e);
        let rest = self
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| conf("give the bucket as s3://BUCKET/PREFIX".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.is_empty() || !bucket.chars().all(valid) {
            return Err(conf(format!(
                "{bucket:?} is not a bucket name (lower case letters, digits, '-' and '.')"
            )));
        }
        key::check(&self.template).map_err(conf)?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: self.retries,
                retry_timeout: Duration::from_secs(30),
            });
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &self.region {
            b = b.with_region(r);
        }
        if let Some(h) = self.allow_http {
            b = b.with_allow_http(h);
        }
        let store = b
            .build()
            .map_err(|e| Error::new("configure", &self.url, e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("logcut-ship")
            .enable_all()
            .build()
            .map_err(|e| Error::new("start the network runtime for", &self.url, e))?;
        let host = self.host.unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
        Ok(S3Shipper {
            store: Arc::new(store),
            rt,
            url: self.url.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            template: self.template,
            base: self.base,
            host,
            multipart_from: self.multipart_from,
        })
    }
}

/// Uploads sealed segments to an S3-compatible bucket; see the crate docs.
#[derive(Debug)]
pub struct S3Shipper {
    store: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
    url: String,
    bucket: String,
    prefix: String,
    template: String,
    base: Option<PathBuf>,
    host: String,
    multipart_from: u64,
}

impl S3Shipper {
    /// `s3://BUCKET/KEY`, for messages.
    pub(crate) fn object_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// A builder for the bucket (and key prefix) `url`, `s3://BUCKET/PREFIX`.
    pub fn builder(url: impl Into<String>) -> S3Builder {
        S3Builder {
            url: url.into(),
            endpoint: None,
            region: None,
            allow_http: None,
            path_style: false,
            template: DEFAULT_TEMPLATE.to_string(),
            base: None,
            host: None,
            retries: 5,
            multipart_from: 64 << 20,
        }
    }

    /// The bucket URL this shipper writes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn parts<'a>(
        &'a self,
        dir: &'a str,
        log: &'a str,
        date: &'a str,
        file: &'a str,
        seq: u64,
    ) -> key::Parts<'a> {
        key::Parts {
            prefix: &self.prefix,
            host: &self.host,
            path: dir,
            log,
            date,
            file,
            seq,
        }
    }

    /// The key of segment `seq` of log `log` in `dir`, uploaded as `file`,
    /// which became active at `start`.
    pub fn key_for(
        &self,
        dir: &Path,
        log: &str,
        seq: u64,
        file: &str,
        start: jiff::Timestamp,
    ) -> String {
        let path = key::rel_path(dir, self.base.as_deref());
        let date = start.strftime("%Y/%m/%d").to_string();
        key::render(&self.template, &self.parts(&path, log, &date, file, seq))
    }

    /// The part every key of log `log` in `dir` starts with.
    pub(crate) fn log_prefix(&self, dir: &Path, log: &str) -> String {
        let path = key::rel_path(dir, self.base.as_deref());
        key::log_prefix(&self.template, &self.parts(&path, log, "", "", 0))
    }

    async fn upload(
        &self,
        key: &Key,
        path: &Path,
        bytes: u64,
        attrs: Attributes,
    ) -> Result<Option<String>, Error> {
        let fail = |op, e: Box<dyn std::error::Error + Send + Sync>| {
            Error::new(op, self.object_url(key.as_ref()), e)
        };
        if bytes < self.multipart_from {
            let data = std::fs::read(path).map_err(|e| fail("read the segment for", e.into()))?;
            let opts = PutOptions {
                mode: PutMode::Overwrite,
                attributes: attrs,
                ..PutOptions::default()
            };
            self.store
                .put_opts(key, PutPayload::from(data), opts)
                .await
                .map_err(|e| fail("upload", e.into()))?;
        } else {
            let opts = PutMultipartOptions {
                attributes: attrs,
                ..PutMultipartOptions::default()
            };
            let up = self
                .store
                .put_multipart_opts(key, opts)
                .await
                .map_err(|e| fail("start the upload of", e.into()))?;
            let mut w = WriteMultipart::new_with_chunk_size(up, 16 << 20);
            let mut f =
                std::fs::File::open(path).map_err(|e| fail("read the segment for", e.into()))?;
            let mut buf = vec![0u8; 4 << 20];
            loop {
                let n = match io::Read::read(&mut f, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(fail("read the segment for", e.into()));
                    }
                };
                w.wait_for_capacity(4)
                    .await
                    .map_err(|e| fail("upload", e.into()))?;
                w.write(&buf[..n]);
            }
            w.finish()
                .await
                .map_err(|e| fail("finish the upload of", e.into()))?;
        }
        let meta = self
            .store
            .head(key)
            .await
            .map_err(|e| fail("check the upload of", e.into()))?;
        if meta.size != bytes {
            return Err(fail(
                "check the upload of",
                format!("the server holds {} bytes, not {bytes}", meta.size).into(),
            ));
        }
        Ok(meta.e_tag)
    }

    /// Checks log directory `dir` (every log in it) against the bucket:
    /// every object its manifests say was shipped is there, of the
    /// recorded length, with bytes of the recorded SHA-256 and CRC-32; and
    /// no object under the logs' key prefixes is unknown to them.
    pub fn verify_remote(&self, dir: &Path) -> Result<RemoteReport, Error> {
        self.rt.block_on(remote::verify(self, dir))
    }
}

impl logcut::Ship for S3Shipper {
    fn ship(&self, seg: &logcut::ShipSegment<'_>) -> io::Result<logcut::Shipped> {
        let key = self.key_for(seg.dir, seg.log, seg.seq, seg.file, seg.start);
        let obj = Key::parse(&key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut attrs = Attributes::new();
        let sha: String = seg.sha256.iter().map(|b| format!("{b:02x}")).collect();
        attrs.insert(
            Attribute::Metadata(META_SHA256.into()),
            AttributeValue::from(sha),
        );
        attrs.insert(
            Attribute::Metadata(META_CRC32.into()),
            AttributeValue::from(format!("{:08x}", seg.crc32)),
        );
        let path = seg.dir.join(seg.file);
        let etag = self
            .rt
            .block_on(self.upload(&obj, &path, seg.bytes, attrs))
            .map_err(io::Error::other)?;
        Ok(logcut::Shipped { key, etag })
    }
}
