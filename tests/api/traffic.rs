//! Hostile and careless traffic: sockets that trickle a request head or sit idle, more
//! connections than the cap, clients that stop reading, and clients over their rate limit.
//! Each must cost its sender, not the other clients.

use crate::backend_tests;
use crate::support::*;
use jobs_service::auth::Scope;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// The `host:port` of a base URL.
fn host_port(base_url: &str) -> &str {
    base_url.trim_start_matches("http://")
}

/// Reads until the server closes the connection (EOF or reset); how long that took, or
/// `None` when it was still open after `patience`. What arrives is thrown away.
async fn time_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    started: Instant,
    patience: Duration,
) -> Option<Duration> {
    let mut sink = [0u8; 4096];
    let closed = tokio::time::timeout(patience, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

/// Reads one answer with a `content-length` body off `stream`: its head and body.
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if received.len() >= end + 4 + length {
                let body =
                    String::from_utf8_lossy(&received[end + 4..end + 4 + length]).to_string();
                return (head, body);
            }
        }
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("the server answers")
            .expect("reads");
        assert!(
            read > 0,
            "the connection closed before the answer was whole: {received:?}"
        );
        received.extend_from_slice(&chunk[..read]);
    }
}

backend_tests! {
    /// Slowloris and idle keep-alive sockets: with the default timeouts, 300 of each are
    /// closed within 15 s, while `/health/live` and authenticated `/v1` requests go on
    /// being answered all along.
    async fn trickling_and_idle_connections_are_closed_while_others_are_served(app: TestApp) {
        let address = host_port(&app.address).to_owned();
        let job = app.create_job(1).await;
        let started = Instant::now();
        let patience = Duration::from_secs(20);

        let mut sockets = Vec::new();
        for _ in 0..300 {
            let address = address.clone();
            // A request head, one byte a second: it never ends.
            sockets.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(&address).await.expect("connects");
                stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("writes");
                let (mut reading, mut writing) = stream.split();
                let trickle = async {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if writing.write_all(b"a").await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = trickle => Some(started.elapsed()),
                    closed = time_until_closed(&mut reading, started, patience) => closed,
                }
            }));
        }
        for _ in 0..300 {
            let address = address.clone();
            // One answered request, then silence on a kept-alive connection.
            sockets.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(&address).await.expect("connects");
                stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
                let (head, _) = read_answer(&mut stream).await;
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                time_until_closed(&mut stream, started, patience).await
            }));
        }

        // Meanwhile others are served, on fresh connections and on a kept-alive one.
        let mut answered = 0;
        while started.elapsed() < Duration::from_secs(12) {
            let fresh = reqwest::Client::new();
            let live = fresh.get(format!("{}/health/live", app.address)).send().await.expect("answers");
            assert_eq!(live.status(), 200);
            app.get(&format!("/v1/jobs/{job}"), 1).await.assert_status(200);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(answered >= 20, "only {answered} rounds were answered");

        for socket in sockets {
            let closed = socket.await.expect("the socket task ends");
            let closed = closed.expect("the server closed the connection");
            assert!(closed < Duration::from_secs(15), "closed only after {closed:?}");
        }
    }

    /// One connection over `--max-connections` is answered 503 (a problem, `Retry-After`,
    /// `Connection: close`) instead of being left to time out; a slot freed serves again.
    async fn a_connection_over_the_cap_is_answered_503_and_closed(store: TestStore) {
        let app = TestApp::with_settings(store, &["--max-connections=4"]).await;
        let address = host_port(&app.address).to_owned();
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(&address).await.expect("connects");
            stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
            let (head, _) = read_answer(&mut stream).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            held.push(stream);
        }
        let mut extra = TcpStream::connect(&address).await.expect("the kernel accepts");
        extra.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
        let (head, body) = read_answer(&mut extra).await;
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 503"), "{head}");
        assert!(head.contains("content-type: application/problem+json"), "{head}");
        assert!(head.contains("retry-after: 1"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(&body).expect("a JSON problem");
        assert_eq!(problem["type"], "/problems/service-unavailable");
        assert_eq!(problem["status"], 503);
        assert!(time_until_closed(&mut extra, Instant::now(), PATIENCE).await.is_some());

        drop(held);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = reqwest::Client::new().get(format!("{}/health/live", app.address)).send().await;
            if answer.is_ok_and(|answer| answer.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "the freed slots serve again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client that sends requests and never reads the answers fills its socket; with
    /// `--write-timeout 1` the server closes the connection rather than wait on it.
    async fn a_client_that_stops_reading_is_disconnected(store: TestStore) {
        let app = TestApp::with_settings(store, &["--write-timeout=1"]).await;
        let (pipelined, whole) = pipelined_document_requests(&app.address).await;
        let mut stream = connect_with_small_receive_buffer(host_port(&app.address)).await;
        stream.write_all(pipelined.as_bytes()).await.expect("writes the requests");
        // Never read while the server writes; then see what is left.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut received = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => received += read,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection was still open after {received} bytes");
        assert!(received < whole, "every answer arrived ({received} bytes): nothing was cut");
    }

    /// SIGTERM with such a client connected: the server still exits, within its shutdown
    /// timeout.
    async fn sigterm_exits_within_its_deadline_while_a_client_refuses_to_read(store: TestStore) {
        let mut command = server_command(&store, "127.0.0.1:0");
        command.args(["--shutdown-timeout", "2"]).stderr(Stdio::null());
        let (mut server, line) = launch(&mut command).await;
        let url = base_url(&line);
        let (pipelined, _) = pipelined_document_requests(&url).await;
        let mut stream = connect_with_small_receive_buffer(host_port(&url)).await;
        stream.write_all(pipelined.as_bytes()).await.expect("writes the requests");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopping = Instant::now();
        let status = terminate(&mut server).await;
        assert!(status.success(), "{status:?}");
        let took = stopping.elapsed();
        // The deadline is 2 s; the write timeout (30 s by default) never came into it.
        assert!(took < Duration::from_secs(15), "the server took {took:?} to stop");
        drop(stream);
    }
}

/// Requests for `/openapi.json`, pipelined, that make many megabytes of answers, and how
/// many bytes all their answers come to.
async fn pipelined_document_requests(base_url: &str) -> (String, usize) {
    let document = reqwest::get(format!("{base_url}/openapi.json"))
        .await
        .expect("answers")
        .bytes()
        .await
        .expect("a body");
    let count = (32 * 1024 * 1024 / document.len()).max(64);
    let request = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    (request.repeat(count), count * document.len())
}

/// A connection whose receive buffer is small, so the server's writes stall soon after the
/// client stops reading.
async fn connect_with_small_receive_buffer(address: &str) -> TcpStream {
    let address: std::net::SocketAddr = address.parse().expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("sets the buffer");
    socket.connect(address).await.expect("connects")
}

/// A client bound to its own loopback address, as a caller on another machine would be.
fn client_from(address: &str) -> reqwest::Client {
    let address: IpAddr = address.parse().expect("an address");
    reqwest::Client::builder()
        .local_address(address)
        .build()
        .expect("a client")
}

backend_tests! {
    /// A client over its `/v1` limit gets 429 with `Retry-After` and the `RateLimit`
    /// fields, and nothing is done for it; another client, meanwhile, is answered as usual.
    async fn a_client_over_its_rate_limit_is_refused_and_another_is_not(store: TestStore) {
        let app = TestApp::with_settings(store, &["--rate-limit=20"]).await;
        let (_, flooder) = token_for_customer(&app.store, &app.address, 1).await;
        let (_, other) = token_for_customer(&app.store, &app.address, 2).await;
        let create = |token: String| {
            let request = app
                .build(reqwest::Method::POST, "/v1/jobs", Some(1), Some(&serde_json::json!({"typeId": 1, "contactId": 2})))
                .header("authorization", format!("Bearer {token}"));
            app.send_as_is(request)
        };
        let flood = futures::future::join_all((0..100).map(|_| create(flooder.clone())));
        let others = async {
            let mut replies = Vec::new();
            for _ in 0..10 {
                let request = app
                    .build(reqwest::Method::GET, "/v1/jobs", Some(2), None)
                    .header("authorization", format!("Bearer {other}"));
                replies.push(app.send_as_is(request).await);
            }
            replies
        };
        let (flood, others) = tokio::join!(flood, others);

        let created = flood.iter().filter(|reply| reply.status == 201).count();
        let refused: Vec<_> = flood.iter().filter(|reply| reply.status == 429).collect();
        assert_eq!(created + refused.len(), 100, "only 201 or 429");
        assert!(created >= 20, "the burst of 20 passes: {created}");
        assert!(refused.len() >= 50, "most of the flood is refused: {}", refused.len());
        let refusal = refused[0];
        refusal.assert_problem(429, "/problems/too-many-requests");
        let wait: u64 = refusal.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!((1..=2).contains(&wait), "{wait}");
        assert_eq!(refusal.header("ratelimit-policy"), Some("\"per-client\";q=20;w=1"));
        assert!(refusal.header("ratelimit").is_some_and(|value| value.starts_with("\"per-client\";r=0;t=")));
        // Nothing was done for a refused request: one job per 201.
        let listed = app.get("/v1/jobs?pageSize=1000", 1).await;
        let total = listed.json()["items"].as_array().expect("items").len();
        assert_eq!(total, created, "a job per 201, none per 429");

        for reply in &others {
            reply.assert_status(200);
            let state = reply.header("ratelimit").expect("a RateLimit field");
            assert!(state.starts_with("\"per-client\";r="), "{state}");
        }
        // The flooder's limit refills: after waiting as told, it is served again.
        tokio::time::sleep(Duration::from_secs(wait)).await;
        create(flooder.clone()).await.assert_status(201);
    }

    /// 200 concurrent token requests with made-up credentials from one address: the
    /// address's limit refuses most before any secret is checked, so a registered client
    /// elsewhere gets its token within 2 s.
    async fn a_token_flood_does_not_keep_a_registered_client_from_its_token(store: TestStore) {
        let app = TestApp::with_settings(store, &["--token-rate-limit=10"]).await;
        let client = app.store.register_client(&[Scope::JobsRead], &[1]).await;
        let flooder = client_from("127.0.0.1");
        let url = format!("{}/auth/tokens", app.address);
        let flood = futures::future::join_all((0..200).map(|_| {
            let id = Uuid::now_v7().to_string();
            let secret = Uuid::now_v7().simple().to_string();
            flooder
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)]))
                .send()
        }));
        let legitimate = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            let response = request_token(&client_from("127.0.0.2"), &app.address, &client, None).await;
            (response.status(), started.elapsed())
        };
        let (flood, (status, took)) = tokio::join!(flood, legitimate);
        assert_eq!(status, 200, "the registered client gets its token");
        assert!(took < Duration::from_secs(2), "it took {took:?}");

        let statuses: Vec<u16> = flood.into_iter().map(|reply| reply.expect("answers").status().as_u16()).collect();
        let limited = statuses.iter().filter(|&&status| status == 429).count();
        assert!(statuses.iter().all(|status| [401, 429, 503].contains(status)), "{statuses:?}");
        assert!(limited >= 150, "only {limited} of 200 were refused by the address's limit");
    }

    /// Requests for one client id count together wherever they come from; the 429 names
    /// the client id's policy.
    async fn token_requests_for_one_client_id_are_limited_across_addresses(store: TestStore) {
        let app = TestApp::with_settings(store, &["--token-rate-limit=3"]).await;
        let client = app.store.register_client(&[Scope::JobsRead], &[1]).await;
        let mut statuses = Vec::new();
        let mut last = None;
        for host in 1..=5 {
            let response = request_token(&client_from(&format!("127.0.0.{host}")), &app.address, &client, None).await;
            statuses.push(response.status().as_u16());
            last = Some(response);
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
        let last = last.expect("a response");
        assert_eq!(
            last.headers().get("ratelimit-policy").and_then(|value| value.to_str().ok()),
            Some("\"token-per-client-id\";q=3;w=1")
        );
        let problem: serde_json::Value = last.json().await.expect("a problem");
        assert_eq!(problem["type"], "/problems/too-many-requests");
    }
}

/// Copies job `seed`'s summary row `count` times under new ids: a tenant with that many
/// jobs, as far as its lists are concerned, in seconds.
async fn clone_summaries(store: &TestStore, seed: Uuid, count: u32) {
    let columns = "customer_id, status, type_id, contact_id, reference, created_at, updated_at, version, document";
    let sql = if store.is_postgres() {
        format!(
            "INSERT INTO job_summary (job_id, {columns}) \
             SELECT gen_random_uuid()::text, {columns} FROM job_summary, generate_series(1, {count}) \
             WHERE job_id = '{seed}'"
        )
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO job_summary (job_id, {columns}) \
             SELECT lower(hex(randomblob(16))), {columns} FROM job_summary, n \
             WHERE job_id = '{seed}'"
        )
    };
    store.execute_sql(&sql).await;
}

/// The costliest list a caller can ask for: the deepest numbered page, the largest, every
/// filter.
const PATHOLOGICAL_LIST: &str = "/v1/jobs?pageNumber=11&pageSize=1000&status=new&status=scheduled\
    &typeId=1&contactId=2&reference=none-of-them&createdFrom=2000-01-01T00:00:00Z\
    &createdTo=2999-01-01T00:00:00Z&sortBy=updatedAt&direction=descending";

backend_tests! {
    /// One tenant with 100 000 jobs runs the costliest list it can, from 16 clients at once,
    /// over and over: another tenant's reads still answer within a second each, and the
    /// first tenant gets its answers (or 503s), never anything else.
    async fn a_tenants_pathological_listing_does_not_hold_up_another_tenants_reads(app: TestApp) {
        let seed = app.create_job(1).await;
        clone_summaries(&app.store, seed, 100_000).await;
        let other_job = app.create_job(2).await;
        app.default_client(1).await;

        let stop_at = Instant::now() + Duration::from_secs(6);
        let heavy = futures::future::join_all((0..16).map(|_| async {
            let mut statuses = Vec::new();
            while Instant::now() < stop_at {
                statuses.push(app.get(PATHOLOGICAL_LIST, 1).await.status);
            }
            statuses
        }));
        let light = async {
            let mut slowest = Duration::ZERO;
            let mut reads = 0;
            tokio::time::sleep(Duration::from_millis(500)).await;
            while Instant::now() < stop_at {
                for path in [format!("/v1/jobs/{other_job}"), "/v1/jobs?pageSize=10".to_owned()] {
                    let started = Instant::now();
                    app.get(&path, 2).await.assert_status(200);
                    slowest = slowest.max(started.elapsed());
                    reads += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (slowest, reads)
        };
        let (heavy, (slowest, reads)) = tokio::join!(heavy, light);
        assert!(slowest < Duration::from_secs(1), "a read of the other tenant took {slowest:?}");
        assert!(reads >= 20, "only {reads} reads");
        let statuses: Vec<u16> = heavy.into_iter().flatten().collect();
        assert!(statuses.contains(&200), "the heavy lists are answered too");
        assert!(statuses.iter().all(|status| [200, 503].contains(status)), "{statuses:?}");
    }

    /// A list past the statement bound is stopped — by PostgreSQL's `statement_timeout`,
    /// by an interrupt on SQLite — and reported as the store being unavailable (a 503);
    /// the connection it ran on serves the next query as usual.
    async fn a_list_past_the_statement_bound_is_stopped(app: TestApp) {
        use projections::model::paging::{JobFilter, PageRequest};
        use projections::store::SessionBounds;
        let seed = app.create_job(1).await;
        clone_summaries(&app.store, seed, 100_000).await;

        let bounds = SessionBounds { statement_timeout: Some(Duration::from_millis(5)) };
        let bounded = projections::store::open_bounded(&app.store.database_url, bounds)
            .await
            .expect("opens");
        let queries = bounded.queries();
        let filter = JobFilter::default();
        let deepest = PageRequest { number: PageRequest::MAX_NUMBER, size: 1000 };
        for _ in 0..3 {
            let error = queries.list_jobs(1, &filter, deepest, None).await.expect_err("stopped");
            assert!(error.is_unavailable(), "{error}");
        }
        if !app.store.is_postgres() {
            // The interrupt stopped that query only: the connections list as usual.
            for _ in 0..8 {
                let page = queries
                    .list_jobs(1, &filter, PageRequest { number: 1, size: 1 }, None)
                    .await
                    .expect("a first page within the bound");
                assert_eq!(page.items.len(), 1);
            }
        }
        let unbounded = app.store.open().await.queries();
        let page = unbounded.list_jobs(1, &filter, PageRequest { number: 1, size: 5 }, None).await.expect("lists");
        assert_eq!(page.items.len(), 5);
    }
}

/// PostgreSQL only (a SQLite reader never waits on a lock to be made slow; there, the stop
/// is the interrupt tested above): a job list whose caller stops waiting is cancelled on
/// the server, instead of running on for as long as it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_whose_caller_gives_up_is_cancelled_on_the_server() {
    use projections::model::paging::{JobFilter, PageRequest};
    use projections::store::SessionBounds;
    use sqlx::Connection;
    let store = TestStore::new(Backend::Postgres).await;
    store.open().await;
    let bounds = SessionBounds {
        statement_timeout: Some(Duration::from_secs(60)),
    };
    let bounded = projections::store::open_bounded(&store.database_url, bounds)
        .await
        .expect("opens");
    let queries = bounded.queries();

    // The list will wait for this lock for as long as the test holds it.
    let mut holder = sqlx::PgConnection::connect(&store.database_url)
        .await
        .expect("connects");
    sqlx::raw_sql("BEGIN; LOCK TABLE job_summary IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .expect("locks");
    let waiting = || async {
        let mut observer = sqlx::PgConnection::connect(&store.database_url)
            .await
            .expect("connects");
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE relation = 'job_summary'::regclass AND NOT granted",
        )
        .fetch_one(&mut observer)
        .await
        .expect("counts");
        count
    };
    let page = PageRequest {
        number: 1,
        size: 10,
    };
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        queries.list_jobs(1, &JobFilter::default(), page, None),
    )
    .await;
    assert!(gave_up.is_err(), "the list waits for the lock");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if waiting().await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned list still waits on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("unlocks");
    let page = queries
        .list_jobs(1, &JobFilter::default(), page, None)
        .await
        .expect("lists again");
    assert!(page.items.is_empty());
}
