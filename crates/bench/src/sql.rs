//! Section 7: users' tokens in SQL (`helloflex-store-sql`): the request path on a SQLite file
//! and on a real PostgreSQL server on loopback against the memory store (a fresh token must
//! not cost a database call), and the database round trips one refresh costs, counted by a
//! forwarder between the store and PostgreSQL.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use helloflex_auth::{Key, KeyRing, TokenStore};
use helloflex_core::ClientSecret;
use helloflex_store_sql::{Database, SqlStore};
use helloflex_testkit::PgServer;
use helloflex_transport_reqwest::Client;

use crate::abba::{AbbaRow, ROUNDS_SAME_PATH};
use crate::clients::async_rate;
use crate::emulator::{environment, reset, token_requests};
use crate::{DEMO, ROLL, Result};

/// What the SQL section measured.
pub struct SqlStores {
    /// Memory store (A) and a SQLite file (B).
    pub sqlite: AbbaRow,
    /// Memory store (A) and PostgreSQL (B).
    pub postgres: AbbaRow,
    /// Refreshes (token requests) in the round-trip run.
    pub refreshes: u64,
    /// Round trips to PostgreSQL in it.
    pub round_trips: u64,
    /// Round trips to PostgreSQL in a window of the same length with a fresh token.
    pub round_trips_fresh: u64,
}

/// Runs section 7 against the emulator at `base` (the roll client's tokens live 1 s).
pub fn run(rt: &tokio::runtime::Runtime, base: &str) -> Result<SqlStores> {
    // Long-lived tokens for the demo client (the fleet section before this one gives it 2-s
    // tokens): the request path with a fresh token is what is measured here.
    let lifetime = serde_json::json!({"seconds": 3600, "client": DEMO.0});
    crate::emulator::admin(base, "token-lifetime", Some(lifetime))?;
    let dir = std::env::temp_dir().join(format!("helloflex-bench-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pg = PgServer::start();
    let keys = KeyRing::new(Key::generate("bench")?);
    let sqlite = SqlStore::open(Database::sqlite(dir.join("tokens.db")), DEMO.0, keys.clone())?;
    let postgres = SqlStore::open(Database::postgres(&pg.url()), DEMO.0, keys.clone())?;
    let client = |store: Option<SqlStore>| {
        let builder = Client::builder()
            .environment(environment(base)?)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1));
        let builder = match store {
            Some(store) => builder.shared_token_store(Arc::new(store)),
            None => builder,
        };
        Ok::<_, Box<dyn std::error::Error>>(rt.block_on(async { builder.build() })?)
    };
    let (memory, on_sqlite, on_postgres) =
        (client(None)?, client(Some(sqlite))?, client(Some(postgres))?);
    let rate = |client: &Client| {
        let client = client.clone();
        rt.block_on(async_rate(32, move || {
            let client = client.clone();
            async move { client.get("news").send().await.is_ok() }
        }))
    };
    let row = |name: &str, shared: &Client| AbbaRow {
        name: name.into(),
        rounds: (0..ROUNDS_SAME_PATH)
            .map(|i| AbbaRow::round(i, |b| rate(if b { shared } else { &memory })))
            .collect(),
    };
    let sqlite = row("SQLite file", &on_sqlite);
    let postgres = row("PostgreSQL on loopback", &on_postgres);
    let (refreshes, round_trips, round_trips_fresh) = round_trips(rt, base, &pg, &keys)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(SqlStores { sqlite, postgres, refreshes, round_trips, round_trips_fresh })
}

/// Section 7 alone, against its own emulator (`loadbench --phase sql`): the report on stdout.
pub fn alone(emulator_path: &str) -> Result<()> {
    let emulator = crate::emulator::start(emulator_path)?;
    let lifetime = serde_json::json!({"seconds": 1, "client": ROLL.0});
    crate::emulator::admin(&emulator.base, "token-lifetime", Some(lifetime))?;
    let measured = run(&crate::runtime()?, &emulator.base)?;
    print!("{}", section(&measured));
    Ok(())
}

/// One caller on the roll client (1-s tokens) calling every 10 ms for 6 s through a store on
/// PostgreSQL behind a counting forwarder, after a first call (connections made, tables
/// created): refreshes made and round trips counted; then 0.5 s just after a refresh (a fresh
/// token) on the demo client's long-lived token, which should cost none.
fn round_trips(
    rt: &tokio::runtime::Runtime,
    base: &str,
    pg: &PgServer,
    keys: &KeyRing,
) -> Result<(u64, u64, u64)> {
    let forwarder = Forwarder::start(pg.url())?;
    let store = |client: &str| -> Result<Arc<dyn TokenStore>> {
        let database = Database::postgres(&forwarder.url);
        Ok(Arc::new(SqlStore::open(database, client, keys.clone())?))
    };
    let (roll, demo) = (store(ROLL.0)?, store(DEMO.0)?);
    let client = |id: (&str, &str), store: Arc<dyn TokenStore>| {
        let builder = Client::builder()
            .environment(environment(base)?)
            .client_credentials(id.0, ClientSecret::new(id.1))
            .shared_token_store(store);
        Ok::<_, Box<dyn std::error::Error>>(rt.block_on(async { builder.build() })?)
    };
    let (roll, demo) = (client(ROLL, roll)?, client(DEMO, demo)?);
    let calls = |client: &Client, for_how_long: Duration| {
        rt.block_on(async {
            let started = Instant::now();
            while started.elapsed() < for_how_long {
                let _ = client.get("news").send().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    calls(&roll, Duration::from_millis(100));
    calls(&demo, Duration::from_millis(100));
    reset(base)?;
    forwarder.turns.store(0, Ordering::SeqCst);
    calls(&roll, Duration::from_secs(6));
    let (refreshes, turns) = (token_requests(base)?, forwarder.turns.swap(0, Ordering::SeqCst));
    calls(&demo, Duration::from_millis(500));
    Ok((refreshes, turns, forwarder.turns.load(Ordering::SeqCst)))
}

/// A TCP forwarder to PostgreSQL that counts round trips: a client's message sent after the
/// server last spoke begins one.
struct Forwarder {
    url: String,
    turns: Arc<AtomicU64>,
}

impl Forwarder {
    fn start(upstream_url: String) -> Result<Self> {
        let port: u16 = upstream_url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .ok_or("no port in the server's URL")?
            .parse()?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = upstream_url
            .replace(&format!(":{port}/"), &format!(":{}/", listener.local_addr()?.port()));
        let turns = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&turns);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let answered = Arc::new(AtomicBool::new(true));
                let (up, turns) = (Arc::clone(&answered), Arc::clone(&counted));
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                pump(client, server, move || {
                    if up.swap(false, Ordering::SeqCst) {
                        turns.fetch_add(1, Ordering::SeqCst);
                    }
                });
                pump(server2, client2, move || answered.store(true, Ordering::SeqCst));
            }
        });
        Ok(Self { url, turns })
    }
}

/// Copies `from` to `to` on a thread, calling `on_read` for each read.
fn pump(mut from: TcpStream, mut to: TcpStream, on_read: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    on_read();
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Section 7 as Markdown.
pub fn section(sql: &SqlStores) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### 7. Users' tokens in SQL (`helloflex-store-sql`: a SQLite file, PostgreSQL on loopback)\n"
    );
    let _ = writeln!(md, "| measure | figure |");
    let _ = writeln!(md, "|---|---:|");
    for row in [&sql.sqlite, &sql.postgres] {
        let _ = writeln!(
            md,
            "| request path, async (reqwest), concurrency 32: {} / memory store ({ROUNDS_SAME_PATH} ABBA / BAAB rounds; memory / memory control {:.3}x) | **{:.3}x** ({:.0} vs {:.0} requests/s) |",
            row.name,
            row.control(),
            row.ratio(),
            row.b(),
            row.a()
        );
    }
    let _ = writeln!(
        md,
        "| PostgreSQL round trips per refresh (one caller every 10 ms for 6 s on 1-s tokens, counted by a forwarder: every store call of the run) | **{:.1}** ({} round trips, {} refreshes) |",
        sql.round_trips as f64 / sql.refreshes.max(1) as f64,
        sql.round_trips,
        sql.refreshes
    );
    let _ = writeln!(
        md,
        "| PostgreSQL round trips while the token is fresh (0.5 s of calls every 10 ms) | **{}** |",
        sql.round_trips_fresh
    );
    md
}
