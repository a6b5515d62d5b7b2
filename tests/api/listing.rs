//! `GET /v1/jobs`: tenant isolation, filters, sorting and paging, and the 400s for a bad
//! query.

use crate::backend_tests;
use crate::support::{timestamp, Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER: i64 = 21;
const OTHER_CUSTOMER: i64 = 22;

/// `GET /v1/jobs?{query}` for the customer, asserting 200 and a well-formed page.
async fn list(app: &TestApp, customer: i64, query: &str) -> Value {
    let path = if query.is_empty() {
        "/v1/jobs".to_owned()
    } else {
        format!("/v1/jobs?{query}")
    };
    let reply = app.get(&path, customer).await;
    reply.assert_status(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let page = reply.json();
    let items = page["items"].as_array().expect("an items array");
    assert_eq!(
        page["pageItemCount"],
        items.len(),
        "pageItemCount counts the items: {page}"
    );
    assert!(page["hasMore"].is_boolean());
    assert!(page["pageNumber"].as_u64().is_some_and(|n| n >= 1));
    assert!(page["pageSize"].as_u64().is_some_and(|n| n >= 1));
    page
}

/// The ids of the listed jobs, in order.
async fn list_ids(app: &TestApp, customer: i64, query: &str) -> Vec<Uuid> {
    list(app, customer, query).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|job| {
            assert_eq!(job["customerId"], customer, "only the caller's jobs: {job}");
            job["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("an id")
        })
        .collect()
}

/// Percent-encodes a query value (timestamps carry `:` and `+`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

backend_tests! {
    async fn only_the_callers_jobs_are_listed(app: TestApp) {
        let mine = vec![
            app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 2, "reference": "shared"})).await,
            app.create_job(CUSTOMER).await,
            app.create_job(CUSTOMER).await,
        ];
        let theirs = vec![
            app.create_job_with(OTHER_CUSTOMER, json!({"typeId": 1, "contactId": 2, "reference": "shared"})).await,
            app.create_job(OTHER_CUSTOMER).await,
        ];
        assert_eq!(list_ids(&app, CUSTOMER, "").await, mine);
        assert_eq!(list_ids(&app, OTHER_CUSTOMER, "").await, theirs);
        // Filters that match the other customer's jobs never reach them.
        assert_eq!(list_ids(&app, CUSTOMER, "reference=shared").await, vec![mine[0]]);
        assert_eq!(list_ids(&app, OTHER_CUSTOMER, "reference=shared&typeId=1").await, vec![theirs[0]]);

        let empty = list(&app, 23, "").await;
        assert_eq!(empty["items"], json!([]));
        assert_eq!(empty["pageItemCount"], 0);
        assert_eq!(empty["hasMore"], false);

        // The items are whole jobs, as GET /v1/jobs/{id} shows them.
        let page = list(&app, CUSTOMER, "").await;
        assert_eq!(page["items"][1], app.job(CUSTOMER, mine[1]).await);
        assert_eq!(page["pageNumber"], 1, "default page number");
        assert_eq!(page["pageSize"], 100, "default page size");
        assert_eq!(page["hasMore"], false);

        app.request(Method::GET, "/v1/jobs", None, None)
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
    }

    async fn filters_narrow_the_list(app: TestApp) {
        let a = app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 10, "reference": "A"})).await;
        let b = app.create_job_with(CUSTOMER, json!({"typeId": 2, "contactId": 10, "reference": "B"})).await;
        let c = app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 11, "reference": "A"})).await;
        let d = app.create_job_with(CUSTOMER, json!({"typeId": 2, "contactId": 11})).await;
        let e = app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 12, "reference": "a"})).await;
        app.bring_to(CUSTOMER, d, "cancelled").await;
        app.bring_to(CUSTOMER, e, "onTheWay").await;
        // A look-alike of another customer, which no filter may return.
        let foreign = app.create_job_with(OTHER_CUSTOMER, json!({"typeId": 1, "contactId": 10, "reference": "A"})).await;

        for (query, expected) in [
            ("status=new", vec![a, b, c]),
            ("status=new&status=cancelled", vec![a, b, c, d]),
            ("status=cancelled&status=onTheWay", vec![d, e]),
            ("status=onTheWay", vec![e]),
            ("status=started", vec![]),
            ("typeId=1", vec![a, c, e]),
            ("typeId=2", vec![b, d]),
            ("typeId=3", vec![]),
            ("contactId=11", vec![c, d]),
            ("contactId=10", vec![a, b]),
            ("reference=A", vec![a, c]),
            ("reference=a", vec![e]),
            ("reference=Z", vec![]),
            ("typeId=1&reference=A&status=new", vec![a, c]),
            ("contactId=10&typeId=2", vec![b]),
            ("typeId=1&status=new&status=onTheWay&contactId=12", vec![e]),
        ] {
            assert_eq!(list_ids(&app, CUSTOMER, query).await, expected, "?{query}");
        }
        assert_eq!(list_ids(&app, OTHER_CUSTOMER, "reference=A&status=new").await, vec![foreign]);
        // A reference with characters that need encoding.
        let odd = app.create_job_with(CUSTOMER, json!({"typeId": 9, "contactId": 9, "reference": "R&D #1 + 50%"})).await;
        assert_eq!(list_ids(&app, CUSTOMER, &format!("reference={}", encode("R&D #1 + 50%"))).await, vec![odd]);
    }

    async fn created_range_is_inclusive_from_and_exclusive_to(app: TestApp) {
        let mut ids = Vec::new();
        let mut created = Vec::new();
        for _ in 0..4 {
            let id = app.create_job(CUSTOMER).await;
            created.push(app.job(CUSTOMER, id).await["createdAt"].as_str().expect("createdAt").to_owned());
            ids.push(id);
        }
        let times: Vec<_> = created.iter().map(|t| timestamp(&json!(t))).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "distinct creation times: {created:?}");

        let q = |from: Option<&str>, to: Option<&str>| {
            let mut parts = Vec::new();
            if let Some(from) = from {
                parts.push(format!("createdFrom={}", encode(from)));
            }
            if let Some(to) = to {
                parts.push(format!("createdTo={}", encode(to)));
            }
            parts.join("&")
        };
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&created[1]), None)).await, ids[1..]);
        assert_eq!(list_ids(&app, CUSTOMER, &q(None, Some(&created[2]))).await, ids[..2]);
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&created[1]), Some(&created[3]))).await, ids[1..3]);
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&created[1]), Some(&created[1]))).await, Vec::<Uuid>::new());
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&created[3]), Some(&created[0]))).await, Vec::<Uuid>::new());
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some("2000-01-01T00:00:00Z"), Some("2999-01-01T00:00:00Z"))).await, ids);

        // The same instant written with another offset means the same.
        let offset = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
        let from = times[2].with_timezone(&offset).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        assert!(from.contains("+02:00"), "{from}");
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&from), None)).await, ids[2..]);
        // One microsecond after a creation time excludes that job from a From range.
        let just_after = (times[1] + chrono::Duration::microseconds(1)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        assert_eq!(list_ids(&app, CUSTOMER, &q(Some(&just_after), None)).await, ids[2..]);
        assert_eq!(list_ids(&app, CUSTOMER, &q(None, Some(&just_after))).await, ids[..2]);

        // Combined with the creation-time sort, descending.
        let descending = list_ids(&app, CUSTOMER, &format!("{}&direction=descending", q(Some(&created[1]), None))).await;
        assert_eq!(descending, vec![ids[3], ids[2], ids[1]]);
    }

    async fn sorting_by_created_or_updated_in_either_direction(app: TestApp) {
        let a = app.create_job(CUSTOMER).await;
        let b = app.create_job(CUSTOMER).await;
        let c = app.create_job(CUSTOMER).await;
        // Updated order: c (never changed), then b, then a.
        app.patch(&format!("/v1/jobs/{b}"), CUSTOMER, json!({"reference": "b"})).await.assert_status(204);
        app.patch(&format!("/v1/jobs/{a}"), CUSTOMER, json!({"reference": "a"})).await.assert_status(204);

        for (query, expected) in [
            ("", vec![a, b, c]),
            ("sortBy=createdAt", vec![a, b, c]),
            ("direction=ascending", vec![a, b, c]),
            ("sortBy=createdAt&direction=ascending", vec![a, b, c]),
            ("sortBy=createdAt&direction=descending", vec![c, b, a]),
            ("direction=descending", vec![c, b, a]),
            ("sortBy=updatedAt", vec![c, b, a]),
            ("sortBy=updatedAt&direction=ascending", vec![c, b, a]),
            ("sortBy=updatedAt&direction=descending", vec![a, b, c]),
        ] {
            assert_eq!(list_ids(&app, CUSTOMER, query).await, expected, "?{query}");
        }
        // The orders agree with the timestamps the API shows.
        let page = list(&app, CUSTOMER, "sortBy=updatedAt").await;
        let updated: Vec<_> = page["items"].as_array().expect("items").iter().map(|j| timestamp(&j["updatedAt"])).collect();
        assert!(updated.windows(2).all(|w| w[0] <= w[1]), "{updated:?}");

        // Sorting and paging together: the second page of one, descending by update.
        assert_eq!(list_ids(&app, CUSTOMER, "sortBy=updatedAt&direction=descending&pageSize=1&pageNumber=2").await, vec![b]);

        for query in ["sortBy=status", "sortBy=createdat", "sortBy=", "direction=up", "direction=DESC", "direction=asc"] {
            let problem = app
                .get(&format!("/v1/jobs?{query}"), CUSTOMER)
                .await
                .assert_problem(400, "/problems/invalid-query");
            let name = query.split('=').next().unwrap_or_default();
            assert!(problem["detail"].as_str().unwrap_or_default().contains(name), "{problem}");
        }
    }

    async fn paging_walks_through_every_job(app: TestApp) {
        let mut ids = Vec::new();
        for _ in 0..7 {
            ids.push(app.create_job(CUSTOMER).await);
        }
        let mut seen = Vec::new();
        for (number, count, more) in [(1, 3, true), (2, 3, true), (3, 1, false)] {
            let page = list(&app, CUSTOMER, &format!("pageSize=3&pageNumber={number}")).await;
            assert_eq!(page["pageNumber"], number);
            assert_eq!(page["pageSize"], 3);
            assert_eq!(page["pageItemCount"], count, "page {number}");
            assert_eq!(page["hasMore"], more, "page {number}");
            seen.extend(page["items"].as_array().expect("items").iter().map(|j| j["id"].as_str().unwrap_or_default().parse::<Uuid>().expect("id")));
        }
        assert_eq!(seen, ids, "every job once, in order");

        let past = list(&app, CUSTOMER, "pageSize=3&pageNumber=4").await;
        assert_eq!(past["items"], json!([]));
        assert_eq!(past["pageItemCount"], 0);
        assert_eq!(past["hasMore"], false);
        assert_eq!(past["pageNumber"], 4);

        // Exactly full pages: hasMore only when something follows.
        let full = list(&app, CUSTOMER, "pageSize=7").await;
        assert_eq!((full["pageItemCount"].clone(), full["hasMore"].clone()), (json!(7), json!(false)));
        let one_short = list(&app, CUSTOMER, "pageSize=6").await;
        assert_eq!((one_short["pageItemCount"].clone(), one_short["hasMore"].clone()), (json!(6), json!(true)));
        let last_of_one = list(&app, CUSTOMER, "pageSize=1&pageNumber=7").await;
        assert_eq!(last_of_one["items"][0]["id"], ids[6].to_string());
        assert_eq!(last_of_one["hasMore"], false);

        // Paging applies after filtering.
        app.bring_to(CUSTOMER, ids[1], "cancelled").await;
        app.bring_to(CUSTOMER, ids[4], "cancelled").await;
        app.bring_to(CUSTOMER, ids[5], "cancelled").await;
        let page = list(&app, CUSTOMER, "status=cancelled&pageSize=2&pageNumber=2").await;
        assert_eq!(page["pageItemCount"], 1);
        assert_eq!(page["items"][0]["id"], ids[5].to_string());
        assert_eq!(page["hasMore"], false);
    }

    async fn paging_out_of_range_is_400(app: TestApp) {
        app.create_job(CUSTOMER).await;
        for query in [
            "pageSize=0",
            "pageSize=1001",
            "pageSize=x",
            "pageSize=-1",
            "pageSize=",
            "pageSize=1.5",
            "pageNumber=0",
            "pageNumber=10001",
            "pageNumber=12&pageSize=1000",
            "pageNumber=-1",
            "pageNumber=99999999999",
            "pageNumber=abc",
        ] {
            let problem = app
                .get(&format!("/v1/jobs?{query}"), CUSTOMER)
                .await
                .assert_problem(400, "/problems/invalid-paging");
            let name = query.split('=').next().unwrap_or_default();
            assert!(problem["detail"].as_str().unwrap_or_default().contains(name), "?{query}: {problem}");
            assert_eq!(problem["instance"], "/v1/jobs");
        }
        let page = list(&app, CUSTOMER, "pageSize=1000").await;
        assert_eq!(page["pageSize"], 1000);
        assert_eq!(page["pageItemCount"], 1);
        let page = list(&app, CUSTOMER, "pageNumber=10000&pageSize=1").await;
        assert_eq!(page["pageNumber"], 10000);
        assert_eq!(page["items"], json!([]));
        assert_eq!(page["hasMore"], false);
        let page = list(&app, CUSTOMER, "pageNumber=11&pageSize=1000").await;
        assert_eq!(page["items"], json!([]));
        let page = list(&app, CUSTOMER, "pageNumber=1&pageSize=1").await;
        assert_eq!(page["pageItemCount"], 1);
    }

    async fn bad_filters_and_unknown_parameters_are_400(app: TestApp) {
        app.create_job(CUSTOMER).await;
        for query in [
            "status=done",
            "status=NEW",
            "status=",
            "status=new&status=finished",
            "foo=1",
            "pagesize=10",
            "customerId=22",
            "createdFrom=yesterday",
            "createdFrom=2026-12-01",
            "createdFrom=2026-13-01T00:00:00Z",
            "createdTo=2026-12-01T00:00:00",
            "typeId=0",
            "typeId=abc",
            "contactId=-1",
            "reference=a&reference=b",
        ] {
            let problem = app
                .get(&format!("/v1/jobs?{query}"), CUSTOMER)
                .await
                .assert_problem(400, "/problems/invalid-query");
            let last = query.rsplit('&').next().unwrap_or_default();
            let name = last.split('=').next().unwrap_or_default();
            assert!(problem["detail"].as_str().unwrap_or_default().contains(name), "?{query}: {problem}");
        }
    }
}

/// Follows `nextCursor` from the first page of `query` (with `pageSize`), returning every
/// job id seen, in order, and how many pages it took.
async fn follow_cursors(
    app: &TestApp,
    customer: i64,
    query: &str,
    page_size: u32,
) -> (Vec<Uuid>, usize) {
    follow_cursors_from(app, customer, query, page_size, None).await
}

/// The same, from the page `cursor` starts.
async fn follow_cursors_from(
    app: &TestApp,
    customer: i64,
    query: &str,
    page_size: u32,
    mut cursor: Option<String>,
) -> (Vec<Uuid>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let mut page_query = format!("{query}&pageSize={page_size}");
        if let Some(cursor) = &cursor {
            page_query.push_str(&format!("&cursor={cursor}"));
        }
        let page = list(app, customer, &page_query).await;
        pages += 1;
        for job in page["items"].as_array().expect("items") {
            ids.push(
                job["id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .expect("an id"),
            );
        }
        match page["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(page["hasMore"], true, "a cursor only while more follow");
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(page["hasMore"], false);
                return (ids, pages);
            }
        }
        assert!(pages < 100, "the cursors end");
    }
}

backend_tests! {
    /// Following `nextCursor` reads every job of a list once, in the list's order, for
    /// each order and direction and with filters, the same jobs a single page holds.
    async fn next_cursors_read_every_job_once_in_order(app: TestApp) {
        let mut ids = Vec::new();
        for n in 0..23 {
            let id = app.create_job_with(CUSTOMER, json!({"typeId": 1 + n % 2, "contactId": 2})).await;
            ids.push(id);
        }
        // Touch some so that the update order differs from the creation order.
        for id in ids.iter().step_by(3) {
            app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"description": "touched"})).await.assert_status(204);
        }
        app.create_job(OTHER_CUSTOMER).await;
        for query in [
            "sortBy=createdAt&direction=ascending",
            "sortBy=createdAt&direction=descending",
            "sortBy=updatedAt&direction=ascending",
            "sortBy=updatedAt&direction=descending",
            "typeId=2&direction=descending",
            "status=new",
        ] {
            let whole = list_ids(&app, CUSTOMER, &format!("{query}&pageSize=1000")).await;
            let (followed, pages) = follow_cursors(&app, CUSTOMER, query, 4).await;
            assert_eq!(followed, whole, "?{query}");
            assert_eq!(pages, whole.len().div_ceil(4).max(1), "?{query}");
        }
    }

    /// Jobs created while a client pages through never shift a page: nothing is seen twice
    /// or skipped, and in creation order the new ones come at the end.
    async fn jobs_created_while_paging_shift_nothing(app: TestApp) {
        let mut before = Vec::new();
        for _ in 0..9 {
            before.push(app.create_job(CUSTOMER).await);
        }
        let first = list(&app, CUSTOMER, "pageSize=4").await;
        let mut seen: Vec<Uuid> = first["items"].as_array().expect("items").iter()
            .map(|job| Uuid::parse_str(job["id"].as_str().expect("id")).expect("a uuid")).collect();
        let mut added = Vec::new();
        for _ in 0..3 {
            added.push(app.create_job(CUSTOMER).await);
        }
        let cursor = first["nextCursor"].as_str().expect("a cursor").to_owned();
        let (rest, _) = follow_cursors_from(&app, CUSTOMER, "sortBy=createdAt", 4, Some(cursor)).await;
        seen.extend(rest);
        let expected: Vec<Uuid> = before.iter().chain(&added).copied().collect();
        assert_eq!(seen, expected);
    }

    /// A cursor continues only the list it came from, never with a page number, and a
    /// numbered page deeper than 10 000 items is refused with a pointer to the cursor.
    async fn cursors_are_checked_and_deep_offsets_point_to_them(app: TestApp) {
        for _ in 0..3 {
            app.create_job_with(CUSTOMER, json!({"typeId": 5, "contactId": 2})).await;
        }
        let page = list(&app, CUSTOMER, "typeId=5&pageSize=1").await;
        let cursor = page["nextCursor"].as_str().expect("a cursor").to_owned();
        list(&app, CUSTOMER, &format!("typeId=5&pageSize=1&cursor={cursor}")).await;
        for query in [
            format!("typeId=6&cursor={cursor}"),
            format!("typeId=5&direction=descending&cursor={cursor}"),
            format!("typeId=5&sortBy=updatedAt&cursor={cursor}"),
            format!("cursor={cursor}"),
            format!("typeId=5&pageNumber=2&cursor={cursor}"),
            "cursor=not-a-cursor".to_owned(),
            "cursor=".to_owned(),
            format!("cursor={}", "A".repeat(5000)),
        ] {
            let problem = app.get(&format!("/v1/jobs?{query}"), CUSTOMER).await.assert_problem(400, "/problems/invalid-paging");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("cursor") && detail.len() < 300, "?{query}: {detail}");
        }
        app.get(&format!("/v1/jobs?typeId=5&cursor={cursor}&cursor={cursor}"), CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-query");
        let problem = app.get("/v1/jobs?pageNumber=101&pageSize=101", CUSTOMER).await.assert_problem(400, "/problems/invalid-paging");
        assert!(problem["detail"].as_str().is_some_and(|detail| detail.contains("nextCursor")), "{problem}");
        list(&app, CUSTOMER, "pageNumber=101&pageSize=100").await;
    }
}

/// A value a list statement is given, in its parameters' order.
enum Bound {
    Integer(i64),
    Text(&'static str),
}

/// The plan the store's database makes for `sql` with `values`, as text.
async fn plan(store: &crate::support::TestStore, sql: &str, values: &[Bound]) -> String {
    macro_rules! bind_all {
        ($query:expr) => {{
            let mut query = $query;
            for value in values {
                query = match value {
                    Bound::Integer(value) => query.bind(*value),
                    Bound::Text(value) => query.bind(*value),
                };
            }
            query
        }};
    }
    if store.is_postgres() {
        let pool = sqlx::PgPool::connect(&store.database_url)
            .await
            .expect("connects");
        let explain = format!("EXPLAIN {sql}");
        let rows: Vec<String> = bind_all!(sqlx::query_scalar(&explain))
            .fetch_all(&pool)
            .await
            .expect("explains");
        rows.join("\n")
    } else {
        let pool = sqlx::SqlitePool::connect(&store.database_url)
            .await
            .expect("connects");
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let rows: Vec<(i64, i64, i64, String)> = bind_all!(sqlx::query_as(&explain))
            .fetch_all(&pool)
            .await
            .expect("explains");
        rows.into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

backend_tests! {
    /// Every filter of a job list is served by an index (once the planner has statistics:
    /// PostgreSQL's autovacuum keeps them, the server refreshes SQLite's at start and every
    /// hour), on a store of 21 000 jobs of three customers.
    async fn every_list_filter_is_served_by_an_index(store: crate::support::TestStore) {
        use projections::{JobFilter, JobSort};
        let jobs = store.open().await;
        let seed = if store.is_postgres() {
            "INSERT INTO job_summary SELECT gen_random_uuid()::text, 1 + i % 3, \
             (array['new','scheduled','cancelled'])[1 + i % 3], i % 50, i % 200, 'ref-' || i, \
             now() - i * interval '1 second', now() - i * interval '1 second', 1, '{}' \
             FROM generate_series(1, 21000) i"
        } else {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 21000) \
             INSERT INTO job_summary SELECT lower(hex(randomblob(16))), 1 + i % 3, \
             CASE i % 3 WHEN 0 THEN 'new' WHEN 1 THEN 'scheduled' ELSE 'cancelled' END, \
             i % 50, i % 200, 'ref-' || i, datetime(i, 'unixepoch'), datetime(i, 'unixepoch'), 1, '{}' FROM n"
        };
        store.execute_sql(seed).await;
        if store.is_postgres() {
            store.execute_sql("ANALYZE job_summary").await;
        } else {
            jobs.refresh_planner_statistics().await.expect("analyzes");
        }
        let cases: Vec<(&str, JobFilter, Vec<Bound>, &str)> = vec![
            ("status", JobFilter { statuses: vec![domain::JobStatus::New], ..Default::default() },
                vec![Bound::Text("new")], "job_summary_by_status"),
            ("typeId", JobFilter { type_id: Some(7), ..Default::default() },
                vec![Bound::Integer(7)], "job_summary_by_type"),
            ("contactId", JobFilter { contact_id: Some(7), ..Default::default() },
                vec![Bound::Integer(7)], "job_summary_by_contact"),
            ("reference", JobFilter { reference: Some("ref-7".into()), ..Default::default() },
                vec![Bound::Text("ref-7")], "job_summary_by_reference"),
            ("no filter", JobFilter::default(), vec![], "job_summary_by_created"),
            ("sortBy=updatedAt", JobFilter { sort: JobSort::UpdatedAt, ..Default::default() },
                vec![], "job_summary_by_updated"),
        ];
        for (case, filter, values, index) in cases {
            let sql = projections::store::job_list_sql(&filter, false);
            // The customer, the filter's values, the limit and the offset.
            let mut all = vec![Bound::Integer(1)];
            all.extend(values);
            all.extend([Bound::Integer(101), Bound::Integer(0)]);
            let shown = plan(&store, &sql, &all).await;
            assert!(shown.contains(index), "{case}: {sql}\n{shown}");
        }
    }
}
