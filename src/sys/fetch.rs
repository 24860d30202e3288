//! Images named by http(s) URL: downloaded with curl (retries, resume)
//! into a cache keyed by digest. A lock per URL makes a second import of
//! the same URL wait for the first and reuse its download.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::cmd::{Cmd, Runner};
use super::images::hex;

/// Whole curl runs; each resumes where the last one stopped.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot download {url}: {message} (after {ATTEMPTS} attempts)")]
    Failed { url: String, message: String },
    #[error(
        "cannot verify {url}: the SHA256SUMS beside it ({sums}) {why}; give the digest with \
         --sha256, or pass --no-verify to import it unchecked"
    )]
    NoSums {
        url: String,
        sums: String,
        why: String,
    },
    #[error("image cache {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

pub struct Fetcher<'r> {
    pub runner: &'r dyn Runner,
    pub cache: PathBuf,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

impl Fetcher<'_> {
    fn cache_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
        move |source| FetchError::Cache {
            path: path.display().to_string(),
            source,
        }
    }

    /// The cached file of a digest, if present.
    pub fn cached(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.cache.join("sha256").join(sha256);
        p.is_file().then_some(p)
    }

    /// Download `url` (unless cached) and return the local file.
    pub fn fetch(&self, url: &str, expected: Option<&str>) -> Result<PathBuf, FetchError> {
        if let Some(hit) = expected.and_then(|d| self.cached(d)) {
            return Ok(hit);
        }
        let key = sha256_hex(url.as_bytes());
        let by_digest = self.cache.join("sha256");
        let partial_dir = self.cache.join("partial");
        let urls = self.cache.join("urls");
        for d in [&by_digest, &partial_dir, &urls] {
            std::fs::create_dir_all(d).map_err(Self::cache_err(d))?;
        }
        // One download of a URL at a time; whoever waited reuses it.
        let lock_path = partial_dir.join(format!("{key}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Self::cache_err(&lock_path))?;
        lock.lock().map_err(Self::cache_err(&lock_path))?;
        let index = urls.join(&key);
        if let Ok(digest) = std::fs::read_to_string(&index)
            && let Some(hit) = self.cached(digest.trim())
            && expected.is_none_or(|e| e == digest.trim())
        {
            return Ok(hit);
        }

        let part = partial_dir.join(&key);
        let mut last = String::new();
        let mut ok = false;
        for attempt in 1..=ATTEMPTS {
            let out =
                self.runner
                    .output(&self.curl(url, &part))
                    .map_err(|e| FetchError::Failed {
                        url: url.into(),
                        message: e.to_string(),
                    })?;
            if out.code == 0 {
                ok = true;
                break;
            }
            last = super::cmd::tail(&out.stderr);
            tracing::info!(url, attempt, "download failed: {last}");
            // 22: an HTTP error such as 404; retrying will not help.
            if out.code == 22 && !last.contains(" 5") {
                break;
            }
        }
        if !ok {
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::Failed {
                url: url.into(),
                message: last,
            });
        }
        let digest = {
            let mut f = std::fs::File::open(&part).map_err(Self::cache_err(&part))?;
            let mut h = crate::image::digest::HashingReader::new(&mut f);
            std::io::copy(&mut h, &mut std::io::sink()).map_err(Self::cache_err(&part))?;
            h.finish()
        };
        let dest = by_digest.join(&digest);
        std::fs::rename(&part, &dest).map_err(Self::cache_err(&dest))?;
        std::fs::write(&index, &digest).map_err(Self::cache_err(&index))?;
        Ok(dest)
    }

    fn curl(&self, url: &str, out: &Path) -> Cmd {
        Cmd::new("curl").args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "4",
            "--retry-delay",
            "1",
            "--retry-connrefused",
            "--connect-timeout",
            "10",
            // A stalled transfer (under 1 KiB/s for 30 s) is cut and resumed
            // by the next attempt rather than hanging forever.
            "--speed-limit",
            "1024",
            "--speed-time",
            "30",
            // Resume a partial download from where it stopped.
            "--continue-at",
            "-",
            "--output",
            &out.display().to_string(),
            url,
        ])
    }

    /// The digest the `SHA256SUMS` beside the URL gives for it. A file that
    /// cannot be fetched (after retries) or does not list the image is an
    /// error: an image from the network is never taken unchecked by default.
    pub fn sums_for(&self, url: &str) -> Result<String, FetchError> {
        let (dir, name) = url.rsplit_once('/').unwrap_or((url, ""));
        let sums = format!("{dir}/SHA256SUMS");
        let refuse = |why: String| FetchError::NoSums {
            url: url.into(),
            sums: sums.clone(),
            why,
        };
        let out = self
            .runner
            .output(&Cmd::new("curl").args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--retry",
                "4",
                "--retry-delay",
                "1",
                "--connect-timeout",
                "10",
                "--max-time",
                "120",
                &sums,
            ]))
            .map_err(|e| refuse(format!("could not be fetched ({e})")))?;
        if out.code != 0 {
            return Err(refuse(format!(
                "could not be fetched ({})",
                super::cmd::tail(&out.stderr)
            )));
        }
        crate::image::digest::digest_in_sums(&out.stdout, name)
            .ok_or_else(|| refuse(format!("does not list {name}")))
    }
}
