//! A fresh PostgreSQL database per test, on the server the machine (or `.ci/run`) provides:
//! `COUNTERSIGN_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a
//! database to connect to for creating others. In CI (`CI=true`) a missing server fails the
//! test; elsewhere the test says it was skipped and passes, so `cargo test` works on a machine
//! without PostgreSQL.

use sqlx::{Connection as _, Executor as _, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test, dropped by [`TestDatabase::drop`].
pub struct TestDatabase {
    /// Its `postgres://` URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database with a fresh name, or `None` (printed) when no PostgreSQL answers
    /// outside CI.
    pub async fn create(test: &str) -> Option<Self> {
        let admin =
            std::env::var("COUNTERSIGN_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("no PostgreSQL at {admin} (set COUNTERSIGN_TEST_POSTGRES): {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED {test}: no PostgreSQL at {admin} ({e})");
                return None;
            }
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "countersign_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("COUNTERSIGN_TEST_POSTGRES must end in /<database>"),
        };
        Some(Self { url, admin, name })
    }

    /// Drops the database (connections still open to it are ended).
    pub async fn drop(self) {
        if let Ok(mut conn) = PgConnection::connect(&self.admin).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}

/// A PostgreSQL server of the test's own (initdb + pg_ctl in a temporary directory, on a free
/// loopback port, as `nobody` when the tests run as root: PostgreSQL refuses root), so a test
/// can stop and start it without disturbing the others. `None` (printed) when PostgreSQL's
/// programs are not installed, outside CI; in CI that fails the test.
pub struct OwnServer {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnServer {
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, false)
    }

    /// [`OwnServer::start`] with TLS on: a certificate for `127.0.0.1` signed by a CA of the
    /// test's own ([`OwnServer::ca_file`]), made with `openssl`.
    pub fn start_tls(test: &str) -> Option<Self> {
        Self::start_with(test, true)
    }

    /// The CA that signed the server's certificate (TLS servers only).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(test: &str, tls: bool) -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: PostgreSQL's programs (initdb, pg_ctl) are not installed");
            }
            eprintln!("SKIPPED {test}: PostgreSQL's programs (initdb, pg_ctl) are not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            dir,
            port,
        };
        if as_root() {
            std::os::unix::fs::chown(server.dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let data = server.data();
        server.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust"]);
        if tls {
            server.make_certificate();
            let conf = format!("{data}/postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str(
                "\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(&conf, text).unwrap();
        }
        server.pg_ctl_start();
        Some(server)
    }

    /// A CA and a server certificate for 127.0.0.1 in the data directory (key readable by the
    /// server's user only, as PostgreSQL demands).
    fn make_certificate(&self) {
        let d = self.dir.path();
        let data = std::path::PathBuf::from(self.data());
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ed25519",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ed25519",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        for file in ["server.pem", "server.key"] {
            let target = data.join(file);
            std::fs::copy(d.join(file), &target).unwrap();
            std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if as_root() {
                std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
            }
        }
    }

    /// Stops the server (fast shutdown: connections are ended, as in a restart).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts it again.
    pub fn pg_ctl_start(&self) {
        let log = format!("{}/server.log", self.dir.path().display());
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut command = if as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if as_root() {
            std::process::Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&exe).args(args).output()
        };
    }
}

fn as_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// The directory holding `initdb` and `pg_ctl`: on the `PATH`, or Debian's newest.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Some(dir);
        }
    }
    let mut debian: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    debian.sort();
    debian.pop()
}
