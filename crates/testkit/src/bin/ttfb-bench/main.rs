//! `ttfb-bench`: time to first byte through the gateway, against a slowly streaming upstream.
//!
//! ```text
//! ttfb-bench upstream --listen 127.0.0.1:18483 [--gap-ms 20] [--chunks 8]
//! ttfb-bench measure --url http://127.0.0.1:18480/v1/chat/completions --body-file body.json \
//!     [--requests 2000] [--warmup 200] [--header 'k: v']... [--samples FILE]
//! ```
//!
//! `upstream` is an OpenAI Chat Completions server that streams like a model does: the role chunk
//! at once, then `--chunks` text chunks each `--gap-ms` after the previous event, then the finish
//! chunk, the usage chunk (when asked for), and `data: [DONE]`; every event is its own write.
//!
//! `measure` sends requests one after another over one kept-alive HTTP/1.1 connection (a plain
//! blocking socket, nothing between the clock and the kernel) and reports, in microseconds, the
//! time to the first body byte, to the first event carrying text, and to the end of the stream.
//! See `bench/payload.sh` and docs/performance.md ("Payload processing").

mod http1;
mod measure;
mod upstream;

use std::fmt::Display;
use std::process::ExitCode;

/// Errors are only ever displayed: each carries its context in its message.
type BoxError = sluice_testkit::BoxError;
type Result<T> = std::result::Result<T, BoxError>;

/// `.context("what was being done")` on any displayable error.
trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }
}

const USAGE: &str = "usage:
  ttfb-bench upstream --listen ADDR [--gap-ms 20] [--chunks 8]
  ttfb-bench measure --url http://HOST:PORT/PATH --body-file FILE [--requests 2000] [--warmup 200] [--header 'name: value']... [--samples FILE.csv]";

/// Command-line flags after the mode: `--name value` or `--name=value`; repeatable.
struct Flags {
    pairs: Vec<(String, String)>,
}

impl Flags {
    fn parse(args: &[String], known: &[&str]) -> Result<Flags> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, value.to_owned()),
                _ if arg.starts_with("--") => {
                    let value = it
                        .next()
                        .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
                    (arg.as_str(), value.clone())
                }
                _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
            };
            if !known.contains(&name) {
                return Err(format!("unknown flag {name}\n{USAGE}").into());
            }
            pairs.push((name.to_owned(), value));
        }
        Ok(Flags { pairs })
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.last(name)
            .ok_or_else(|| format!("missing {name}\n{USAGE}").into())
    }

    fn number<N>(&self, name: &str, default: N) -> Result<N>
    where
        N: std::str::FromStr,
        N::Err: Display,
    {
        match self.last(name) {
            None => Ok(default),
            Some(v) => v.parse().context(format_args!("{name} {v:?}")),
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("upstream") => {
            let flags = Flags::parse(&args[1..], &["--listen", "--gap-ms", "--chunks"])?;
            let config = upstream::Config {
                listen: flags
                    .required("--listen")?
                    .parse()
                    .context("--listen (an IP:port)")?,
                gap: std::time::Duration::from_millis(flags.number("--gap-ms", 20)?),
                chunks: flags.number("--chunks", 8)?,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(upstream::serve(config))
        }
        Some("measure") => {
            let flags = Flags::parse(
                &args[1..],
                &[
                    "--url",
                    "--body-file",
                    "--requests",
                    "--warmup",
                    "--header",
                    "--samples",
                ],
            )?;
            let body_file = flags.required("--body-file")?;
            let config = measure::Config {
                url: flags.required("--url")?.to_owned(),
                body: std::fs::read(body_file).context(format_args!("reading {body_file}"))?,
                requests: flags.number("--requests", 2000)?,
                warmup: flags.number("--warmup", 200)?,
                headers: flags
                    .all("--header")
                    .into_iter()
                    .map(String::from)
                    .collect(),
                samples: flags.last("--samples").map(std::path::PathBuf::from),
            };
            measure::run(&config)
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttfb-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
