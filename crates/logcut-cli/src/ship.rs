//! Object storage: `write --ship URL`, `logcut ship DIR --to URL` for a
//! log written earlier, and `verify DIR --remote URL`; the uploader is
//! `logcut_ship::S3Shipper`, credentials from the standard AWS sources
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, profile files, instance
//! metadata), never from flags.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use logcut_ship::S3Shipper;

use crate::UsageError;

/// Where and how to reach the bucket (besides the standard `AWS_*`
/// environment variables, which these override).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct S3Args {
    /// The server's URL, for a server other than AWS (MinIO, Ceph RGW):
    /// http://127.0.0.1:9000. Default: AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub(crate) ship_endpoint: Option<String>,
    /// The bucket's region. Default: AWS_REGION, else us-east-1.
    #[arg(long, value_name = "REGION")]
    pub(crate) ship_region: Option<String>,
    /// Path-style addressing (http://host/bucket/key), as MinIO-style
    /// servers want.
    #[arg(long)]
    pub(crate) ship_path_style: bool,
    /// The object keys: {prefix}, {host}, {path}, {log}, {date}, {file},
    /// {seq}. Default: {prefix}/{host}/{path}/{date}/{file}.
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) ship_template: Option<String>,
}

impl S3Args {
    /// The uploader for bucket `url`; `{path}` relative to `base`.
    pub(crate) fn shipper(&self, url: &str, base: Option<&Path>) -> Result<S3Shipper> {
        let mut b = S3Shipper::builder(url).path_style(self.ship_path_style);
        if let Some(e) = &self.ship_endpoint {
            b = b.endpoint(e);
            // A plain-HTTP endpoint named on the command line is meant.
            if e.starts_with("http://") {
                b = b.allow_http(true);
            }
        }
        if let Some(r) = &self.ship_region {
            b = b.region(r);
        }
        if let Some(t) = &self.ship_template {
            b = b.template(t);
        }
        if let Some(d) = base {
            b = b.base_dir(d);
        }
        b.build().map_err(|e| {
            if e.is_config() {
                UsageError(format!("invalid --ship: {e}")).into()
            } else {
                anyhow::Error::new(e)
            }
        })
    }
}

/// Options of `logcut ship`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShipArgs {
    /// A log directory written earlier (not being written: a running
    /// writer ships with its own --ship), or a router's root.
    dir: PathBuf,
    /// The bucket and key prefix: s3://BUCKET/PREFIX.
    #[arg(long, value_name = "URL")]
    to: String,
    #[command(flatten)]
    s3: S3Args,
    /// Compress what is not compressed yet before shipping it: none, gzip
    /// or zstd (at its default level).
    #[arg(long, value_enum, default_value_t = crate::write::CompressArg::None)]
    compress: crate::write::CompressArg,
    /// Give up when nothing could be shipped for this long (the server
    /// down, wrong credentials).
    #[arg(long, default_value = "60s", value_parser = crate::write::duration)]
    patience: Duration,
}

/// `logcut ship`: every segment of every log in DIR (each tenant's, under
/// a root) not shipped yet, recorded in its manifest as it goes.
pub(crate) fn run(args: ShipArgs) -> Result<ExitCode> {
    let dirs = crate::read::log_dirs(&args.dir, None, None)?;
    let base = args.dir.clone();
    let shipper = Arc::new(args.s3.shipper(&args.to, Some(&base))?);
    let mut total = (0u64, 0u64);
    for dir in &dirs {
        let logs = logcut_format::log_names(dir)
            .map_err(|e| crate::read::cannot(&format!("cannot read {}", dir.display()), dir, &e))?;
        for log in logs {
            let compression = match args.compress {
                crate::write::CompressArg::None => logcut::Compression::None,
                crate::write::CompressArg::Gzip => logcut::Compression::gzip(),
                crate::write::CompressArg::Zstd => logcut::Compression::zstd(),
            };
            let (n, bytes) = ship_log(dir, &log, &shipper, compression, args.patience)?;
            total.0 += n;
            total.1 += bytes;
        }
    }
    println!(
        "shipped {} segments ({} bytes) to {}",
        total.0,
        total.1,
        shipper.url()
    );
    Ok(ExitCode::SUCCESS)
}

/// Ships log `log` in `dir` through an appender opened on it (its keeper
/// ships the backlog, retries and records), until nothing is left.
fn ship_log(
    dir: &Path,
    log: &str,
    shipper: &Arc<S3Shipper>,
    compression: logcut::Compression,
    patience: Duration,
) -> Result<(u64, u64)> {
    let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = Arc::clone(&last_error);
    let a = logcut::Appender::builder()
        .dir(dir)
        .name(log)
        .ship(Arc::clone(shipper) as Arc<dyn logcut::Ship>)
        .compress(compression)
        .backoff(Duration::from_millis(200), Duration::from_secs(5))
        .error_handler(move |e: logcut::Error| {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        })
        .build()
        .with_context(|| format!("cannot open log {log} in {}", dir.display()))?;
    let mut progress = Instant::now();
    let mut left = u64::MAX;
    let res = loop {
        a.tick().context("cannot ship")?;
        let s = a.stats();
        if s.ship_backlog == 0 {
            break Ok((s.segments_shipped, s.bytes_shipped));
        }
        if s.ship_backlog < left {
            left = s.ship_backlog;
            progress = Instant::now();
        }
        if progress.elapsed() > patience {
            let why = last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "no progress".into());
            break Err(anyhow::anyhow!(
                "{} segments of {log} in {} could not be shipped within {patience:?}: {why}",
                s.ship_backlog,
                dir.display()
            ));
        }
        eprint!(
            "\rlogcut ship: {log}: {} segments left ({} bytes)   ",
            s.ship_backlog, s.ship_backlog_bytes
        );
        let _ = std::io::stderr().flush();
        // Failed uploads wait for their backoff on the appender's keeper,
        // and nothing signals the end of a backoff to this command: look
        // again in a moment (not a test; a command's progress loop).
        std::thread::sleep(Duration::from_millis(200));
    };
    a.shutdown()
        .with_context(|| format!("cannot close log {log} in {}", dir.display()))?;
    res
}

/// `verify DIR --remote URL`: every log's shipped segments against the
/// bucket. Returns false if anything is wrong, after printing it.
pub(crate) fn verify_remote(dir: &Path, url: &str, s3: &S3Args) -> Result<bool> {
    let shipper = s3.shipper(url, Some(dir))?;
    let mut ok = true;
    let mut out = std::io::stdout().lock();
    for d in crate::read::log_dirs(dir, None, None)? {
        let report = shipper
            .verify_remote(&d)
            .with_context(|| format!("cannot check {} against {url}", d.display()))?;
        writeln!(out, "{}: {report}", d.display())?;
        ok &= report.is_ok();
    }
    Ok(ok)
}
