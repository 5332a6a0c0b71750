//! A throwaway PostgreSQL server for tests and benchmarks: [`TempPostgres`].
//!
//! It runs the machine's own PostgreSQL binaries: `initdb` into a fresh directory (as the
//! `postgres` user when the caller is root, since `initdb` refuses root), then the server on
//! 127.0.0.1 and a free port, with `fsync` on. It stops when the value is dropped, and a
//! watchdog process stops it if the process that started it dies without dropping it (a
//! SIGKILL, an abort), so no server outlives its test.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that names an existing server to use instead of starting one
/// (a `postgres://` URL whose user may create databases).
pub const PG_URL_ENV: &str = "RUNWARDEN_PG_URL";

/// Why a server could not be had.
#[derive(Debug)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn fail(what: impl Into<String>) -> HarnessError {
    HarnessError(what.into())
}

/// A PostgreSQL server of this process's own (or the one [`PG_URL_ENV`] names), and a fresh
/// database on it.
#[derive(Debug)]
pub struct TempPostgres {
    url: String,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Option<std::process::Child>,
}

impl TempPostgres {
    /// Starts a server (or takes the one [`PG_URL_ENV`] names) and creates a fresh database
    /// on it; [`url`](Self::url) connects to that database.
    ///
    /// # Errors
    /// No PostgreSQL binaries on this machine (install Debian's `postgresql`), or the server
    /// did not start: the error says which step failed and what it printed.
    pub fn start() -> Result<Self, HarnessError> {
        let db = format!("runwarden_{}", uuid::Uuid::now_v7().simple());
        if let Ok(base) = std::env::var(PG_URL_ENV) {
            create_database(&base, &db)?;
            let url = with_database(&base, &db);
            return Ok(TempPostgres { url, server: None });
        }
        let server = Server::start()?;
        let admin = format!("postgres://runwarden@127.0.0.1:{}/postgres", server.port);
        create_database(&admin, &db)?;
        Ok(TempPostgres {
            url: format!("postgres://runwarden@127.0.0.1:{}/{db}", server.port),
            server: Some(server),
        })
    }

    /// The URL of the fresh database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (fast shutdown) and starts it again on the same port and data: what a
    /// database restart looks like to connected clients. A no-op for a server named by
    /// [`PG_URL_ENV`].
    ///
    /// # Errors
    /// The server did not stop or start again.
    pub fn restart(&self) -> Result<(), HarnessError> {
        match &self.server {
            Some(s) => {
                s.pg_ctl(&["stop", "-m", "fast", "-w"])?;
                s.launch()
            }
            None => Ok(()),
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
    }
}

fn with_database(base: &str, db: &str) -> String {
    // postgres://user@host:port/dbname?params → the same with `db`.
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let root = match head[after_scheme..].find('/') {
        Some(i) => &head[..after_scheme + i],
        None => head,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

fn create_database(admin_url: &str, db: &str) -> Result<(), HarnessError> {
    let admin_url = admin_url.to_owned();
    let db = db.to_owned();
    // A runtime of its own: this is called from sync code and from inside async tests alike.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("a runtime for the harness: {e}")))?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                .await
                .map_err(|e| fail(format!("connecting to {admin_url}: {e}")))?;
            let conn = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .map_err(|e| fail(format!("CREATE DATABASE {db}: {e}")))?;
            drop(client);
            let _ = conn.await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| fail("the harness thread panicked"))?
}

/// The directory of the PostgreSQL server binaries: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/N/bin` (Debian keeps them off `PATH`).
fn find_bin() -> Result<PathBuf, HarnessError> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        fail(
            "no PostgreSQL server binaries (initdb) on this machine: install Debian's \
             `postgresql` (apt-get install -y postgresql), or name a server in RUNWARDEN_PG_URL",
        )
    })
}

fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| fail(format!("a free port: {e}")))
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // `id -u` rather than a libc call: this crate forbids `unsafe` and does not need nix.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(u32::MAX)
}

impl Server {
    fn start() -> Result<Self, HarnessError> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let data = std::env::temp_dir().join(format!(
            "runwarden-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&data)
            .map_err(|e| fail(format!("creating {}: {e}", data.display())))?;
        let mut server = Server {
            bin,
            data,
            port: free_port()?,
            as_postgres,
            watchdog: None,
        };
        if as_postgres {
            server.run(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&server.data),
            )?;
        }
        let initdb = server.bin.join("initdb");
        let mut init = server.command(&initdb);
        init.arg("-D").arg(&server.data).args([
            "-U",
            "runwarden",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        server.run(&mut init)?;
        server.launch()?;
        server.watchdog = server.spawn_watchdog();
        Ok(server)
    }

    /// Starts the server on its port and data, and waits until it accepts connections.
    fn launch(&self) -> Result<(), HarnessError> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 -c fsync=on",
            self.port,
            self.data.display()
        );
        let log = self.data.join("server.log");
        self.pg_ctl_with(&["start", "-w", "-t", "60", "-o", &opts, "-l"], Some(&log))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "the server did not listen on port {}; its log: {}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), HarnessError> {
        self.pg_ctl_with(args, None)
    }

    fn pg_ctl_with(&self, args: &[&str], log: Option<&Path>) -> Result<(), HarnessError> {
        let mut c = self.command(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data).args(args);
        if let Some(log) = log {
            c.arg(log);
        }
        self.run(&mut c)
    }

    /// A command run as the `postgres` user when we are root.
    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, c: &mut Command) -> Result<(), HarnessError> {
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("running {c:?}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(format!(
                "{c:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// A shell that stops the server and removes its data once this process is gone, however
    /// it ends.
    fn spawn_watchdog(&self) -> Option<std::process::Child> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} stop -m immediate",
                pg_ctl.display(),
                self.data.display()
            )
        } else {
            format!(
                "{} -D {} stop -m immediate",
                pg_ctl.display(),
                self.data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {data}",
            pid = std::process::id(),
            data = self.data.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn a_url_gets_the_fresh_database() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("postgres://u@h:5/db?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
    }
}
