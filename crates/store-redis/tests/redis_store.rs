//! The Redis store against a real `redis-server` on loopback: the store contract (versioned
//! compare-and-swap, a lease with a fence), lease renewal and lapse, values sealed and bound to
//! their key, key rotation, and failures (unreachable, restarted) as typed errors.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use helloflex_auth::{
    Key, KeyRing, LeaseAttempt, RecordProblem, StoreError, StoredTokens, Swap, TokenStore,
};
use helloflex_core::{AccessToken, RefreshToken};
use helloflex_store_redis::RedisStore;
use redis_server::RedisServer;

const CANARY_ACCESS: &str = "canary-access-7b1f2e9d04c3a8";
const CANARY_REFRESH: &str = "canary-refresh-5e8a1c6f3b0d92";

fn keys(id: &str, byte: u8) -> KeyRing {
    KeyRing::new(Key::new(id, [byte; 32]).unwrap())
}

fn tokens(n: u32) -> StoredTokens {
    let json = format!(
        r#"{{"access_token":"at{n}","refresh_token":"rt{n}","expires_at_unix_ms":{}}}"#,
        4_000_000_000_000u64
    );
    serde_json::from_str(&json).unwrap()
}

fn canaries() -> StoredTokens {
    let json = format!(
        r#"{{"access_token":"{CANARY_ACCESS}","refresh_token":"{CANARY_REFRESH}","expires_at_unix_ms":4000000000000}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}

fn acquired(store: &RedisStore, ttl: Duration) -> helloflex_auth::Lease {
    match store.lease(ttl).unwrap() {
        LeaseAttempt::Acquired(lease) => lease,
        other => panic!("expected the lease, got {other:?}"),
    }
}

#[test]
fn versioned_swap_and_a_fenced_lease() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1))
        .unwrap()
        .with_lease_slice(Duration::from_millis(300));
    assert!(store.load().unwrap().is_none());
    assert_eq!(store.swap(0, &tokens(1), None).unwrap(), Swap::Stored { version: 1 });
    assert_eq!(store.swap(0, &tokens(2), None).unwrap(), Swap::Conflict, "planned from 0");

    // A short lease (no renewal past its budget) is busy for others, then lapses.
    let a = acquired(&store, Duration::from_millis(300));
    let other = store.for_user("x"); // another record: its own lease
    assert!(matches!(other.lease(Duration::from_secs(1)).unwrap(), LeaseAttempt::Acquired(_)));
    assert!(matches!(store.lease(Duration::from_secs(1)).unwrap(), LeaseAttempt::Busy { .. }));
    assert!(
        store.lease_holder().unwrap().unwrap().starts_with(&format!("pid {}", std::process::id()))
    );
    std::thread::sleep(Duration::from_millis(400));
    let b = acquired(&store, Duration::from_secs(1));
    assert!(b.fence > a.fence);
    // A's late write is fenced off; B's lands.
    assert_eq!(store.swap(1, &tokens(3), Some(&a)).unwrap(), Swap::Conflict, "stale holder");
    assert_eq!(store.swap(1, &tokens(4), Some(&b)).unwrap(), Swap::Stored { version: 2 });
    store.release(&b).unwrap();
    assert!(store.lease_holder().unwrap().is_none(), "released");
    let c = acquired(&store, Duration::from_secs(1));
    // Releasing a lease that is no longer yours does not free the current one.
    store.release(&a).unwrap();
    assert!(matches!(store.lease(Duration::from_secs(1)).unwrap(), LeaseAttempt::Busy { .. }));
    store.release(&c).unwrap();

    let record = store.load().unwrap().unwrap();
    assert_eq!(record.version, 2);
    assert_eq!(record.tokens.access_token, AccessToken::new("at4"));
    assert_eq!(record.tokens.refresh_token, Some(RefreshToken::new("rt4")));
}

#[test]
fn a_live_holder_keeps_its_lease_past_the_slice_and_a_silent_one_loses_it() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-b", keys("k1", 1))
        .unwrap()
        .with_lease_slice(Duration::from_millis(300));
    // Budget 1.2 s, slice 0.3 s: renewed while the budget lasts.
    let lease = acquired(&store, Duration::from_millis(1200));
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        matches!(store.lease(Duration::from_secs(1)).unwrap(), LeaseAttempt::Busy { .. }),
        "renewed past three slices"
    );
    // Past its budget nobody renews it: it lapses within a slice.
    std::thread::sleep(Duration::from_millis(700));
    let next = acquired(&store, Duration::from_millis(200));
    assert!(next.fence > lease.fence);
}

#[test]
fn values_are_sealed_bound_to_their_key_and_never_hold_token_bytes() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-c", keys("k1", 1)).unwrap();
    let alice = store.for_user("alice");
    let bob = store.for_user("bob");
    assert_eq!(alice.swap(0, &canaries(), None).unwrap(), Swap::Stored { version: 1 });

    let mut conn = raw(&server);
    // The whole database, as a dump would show it: no canary anywhere.
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    for key in all {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let bytes: Vec<u8> = match kind.as_str() {
            "hash" => {
                let v: Vec<Vec<u8>> = redis::cmd("HVALS").arg(&key).query(&mut conn).unwrap();
                v.concat()
            }
            _ => redis::cmd("GET").arg(&key).query(&mut conn).unwrap(),
        };
        assert!(!bytes.windows(CANARY_ACCESS.len()).any(|w| w == CANARY_ACCESS.as_bytes()));
        assert!(!bytes.windows(CANARY_REFRESH.len()).any(|w| w == CANARY_REFRESH.as_bytes()));
    }

    // Alice's value copied under Bob's key does not open there, and is left as it is.
    let value: Vec<u8> =
        redis::cmd("HGET").arg(alice.record_key()).arg("value").query(&mut conn).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(bob.record_key())
        .arg("version")
        .arg(1)
        .arg("value")
        .arg(&value)
        .query(&mut conn)
        .unwrap();
    let error = bob.load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::RemoteRecord {
                problem: RecordProblem::Sealed(helloflex_auth::OpenError::Unauthentic),
                ..
            }
        ),
        "{error:?}"
    );
    let after: Vec<u8> =
        redis::cmd("HGET").arg(bob.record_key()).arg("value").query(&mut conn).unwrap();
    assert_eq!(after, value, "left untouched");

    // A wrong key, a tampered value, a truncated one: typed errors naming no content.
    let stranger =
        RedisStore::open(&server.url(), "client-c", keys("k9", 9)).unwrap().for_user("alice");
    let error = stranger.load().unwrap_err();
    assert!(matches!(&error, StoreError::RemoteRecord { .. }), "{error:?}");
    let mut tampered = value.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let _: () = redis::cmd("HSET")
        .arg(bob.record_key())
        .arg("value")
        .arg(&tampered)
        .query(&mut conn)
        .unwrap();
    assert!(matches!(bob.load().unwrap_err(), StoreError::RemoteRecord { .. }));
    let _: () = redis::cmd("HSET")
        .arg(bob.record_key())
        .arg("value")
        .arg(&value[..10])
        .query(&mut conn)
        .unwrap();
    let error = bob.load().unwrap_err();
    assert!(matches!(&error, StoreError::RemoteRecord { .. }), "{error:?}");
    let shown = format!("{error} {error:?} {store:?}");
    assert!(!shown.contains("canary"), "{shown}");
}

#[test]
fn a_value_under_an_old_key_opens_and_is_resealed_under_the_active_key_on_its_next_write() {
    let server = RedisServer::start();
    let old = RedisStore::open(&server.url(), "client-d", keys("k1", 1)).unwrap();
    assert_eq!(old.swap(0, &tokens(1), None).unwrap(), Swap::Stored { version: 1 });
    let ring =
        KeyRing::new(Key::new("k2", [2; 32]).unwrap()).with_older(Key::new("k1", [1; 32]).unwrap());
    let rotated = RedisStore::open(&server.url(), "client-d", ring.clone()).unwrap();
    let record = rotated.load().unwrap().unwrap();
    assert_eq!(record.tokens.access_token, AccessToken::new("at1"));
    let mut conn = raw(&server);
    let value: Vec<u8> =
        redis::cmd("HGET").arg(rotated.record_key()).arg("value").query(&mut conn).unwrap();
    assert!(!ring.is_current(&value));
    assert_eq!(rotated.swap(1, &tokens(2), None).unwrap(), Swap::Stored { version: 2 });
    let value: Vec<u8> =
        redis::cmd("HGET").arg(rotated.record_key()).arg("value").query(&mut conn).unwrap();
    assert!(ring.is_current(&value), "resealed under k2");
    assert!(old.load().is_err(), "the old ring alone no longer opens it");
}

#[test]
fn an_unreachable_or_restarted_server_is_a_typed_error_and_loses_nothing() {
    let mut server = RedisServer::start();
    let url_with_password =
        format!("redis://:hunter2-password@127.0.0.1:{}/", redis_server::free_port());
    let nowhere = RedisStore::open(&url_with_password, "client-e", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let error = nowhere.load().unwrap_err();
    assert!(matches!(&error, StoreError::Remote { op: "read", .. }), "{error:?}");
    let shown = format!("{error} {error:?} {nowhere:?} {}", error.clone().into_error());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(RedisStore::open("http://not-redis", "c", keys("k1", 1)).is_err());

    let store = RedisStore::open(&server.url(), "client-e", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    assert_eq!(store.swap(0, &tokens(1), None).unwrap(), Swap::Stored { version: 1 });
    server.stop();
    assert!(matches!(store.load().unwrap_err(), StoreError::Remote { .. }));
    assert!(matches!(store.lease(Duration::from_secs(1)).unwrap_err(), StoreError::Remote { .. }));
    server.restart();
    // The pooled connection died with the server: the store reconnects, the set is still there.
    let record = store.load().unwrap().unwrap();
    assert_eq!((record.version, record.tokens.access_token), (1, AccessToken::new("at1")));
    assert_eq!(store.swap(1, &tokens(2), None).unwrap(), Swap::Stored { version: 2 });
}

/// `rediss://`: the store speaks TLS to a redis-server with a certificate from a private CA.
#[test]
fn rediss_works_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let server = RedisServer::start_tls(&cert.pem(), &key.serialize_pem(), &ca.pem());
    assert!(server.url().starts_with("rediss://"));

    let store = RedisStore::open(&server.url(), "client-tls", keys("k1", 1))
        .unwrap()
        .with_root_certificates(ca.pem().as_bytes())
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert_eq!(store.swap(0, &tokens(1), None).unwrap(), Swap::Stored { version: 1 });
    assert_eq!(store.load().unwrap().unwrap().tokens.access_token, AccessToken::new("at1"));
    assert!(matches!(store.lease(Duration::from_secs(1)).unwrap(), LeaseAttempt::Acquired(_)));

    // The system's roots do not know this CA: a typed error, not a panic.
    let untrusted = RedisStore::open(&server.url(), "client-tls", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let error = untrusted.load().unwrap_err();
    assert!(matches!(error, StoreError::Remote { op: "read", .. }), "{error:?}");
}
