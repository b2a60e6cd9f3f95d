//! ServiceBus driven through a real beehive, on a real SQLite file, with an
//! endpoint standing in for EdgeHub (`websocket`), a real local app (an
//! actix-web server on 127.0.0.1:0) and real HTTP clients.

#![allow(clippy::unwrap_used, reason = "test")]

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use beehive::{Beehive, BeehiveBuilder, Bus};
use proto::{Message, Operation};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::call::MAX_BODY;
use super::wire::{decode_bytes, encode_bytes, AppResponse};
use super::{targets, ServiceBus};
use crate::config::ServiceBus as ServiceBusConfig;

/// How long any awaited condition may take.
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    /// The test's own connection to the module's database.
    db: tokio_rusqlite::Connection,
    bus: Bus,
    up: mpsc::Receiver<Message>,
    hive: Beehive,
    cancel: CancellationToken,
    addr: SocketAddr,
    connected: watch::Sender<bool>,
}

impl Harness {
    /// ServiceBus with `timeout` seconds, on `db_path`, connected.
    async fn start(db_path: &str, timeout: u32) -> Harness {
        // Opened first: two connections switching a new file to WAL at the
        // same time can get "database is locked".
        let db = targets::open(db_path).await.unwrap();
        let config = ServiceBusConfig {
            enable: true,
            server: "127.0.0.1".to_owned(),
            port: 0,
            timeout,
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let mut servicebus = ServiceBus::new(&config, db_path, None, &mut registry);
        let (connected, rx) = watch::channel(true);
        servicebus.connected = Some(rx);
        let addr = servicebus.bind().unwrap();
        assert_eq!(servicebus.bind().unwrap(), addr, "bind is idempotent");
        let mut builder = BeehiveBuilder::new();
        builder.module(servicebus);
        let up = builder.endpoint("websocket", "hub");
        let mut hive = builder.build().unwrap();
        let cancel = CancellationToken::new();
        hive.start(&cancel);
        Harness {
            db,
            bus: hive.bus(),
            up,
            hive,
            cancel,
            addr,
            connected,
        }
    }

    async fn send(&self, msg: Message) {
        self.bus.send("servicebus", msg).await.unwrap();
    }

    async fn next_up(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.up.recv())
            .await
            .expect("a message for edgehub")
            .unwrap()
    }

    /// Posts `body` as a local app does; the status and the parsed answer.
    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, AppResponse) {
        post_to(self.addr, body).await
    }

    /// Waits until `url` is (or is not) in `target_urls`.
    async fn until_allowed(&self, url: &str, allowed: bool) {
        let deadline = Instant::now() + WAIT;
        while targets::contains(&self.db, url).await.unwrap() != allowed {
            assert!(Instant::now() < deadline, "{url} allowed={allowed}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.hive.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

/// What the local app saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    uri: String,
    header: Option<String>,
    body: Vec<u8>,
}

/// The local app: `/echo` answers 201, `/slow` takes 30 s, `/big` answers
/// more than [`MAX_BODY`] bytes.
struct LocalApp {
    port: u16,
    seen: mpsc::Receiver<Seen>,
    cancel: CancellationToken,
}

impl LocalApp {
    fn start() -> LocalApp {
        let (tx, seen) = mpsc::channel::<Seen>(16);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let tx = tx.clone();
            App::new()
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                    let tx = tx.clone();
                    async move { app(req, body, tx).await }
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let cancel = CancellationToken::new();
        tokio::spawn(daemonkit::http::serve_until(server, cancel.clone()));
        LocalApp { port, seen, cancel }
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("a request at the local app")
            .unwrap()
    }
}

impl Drop for LocalApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn app(req: HttpRequest, body: web::Bytes, tx: mpsc::Sender<Seen>) -> HttpResponse {
    let _ = tx.try_send(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        header: req
            .headers()
            .get("x-test")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    });
    match req.path() {
        "/echo" => {
            let mut answer = b"got:".to_vec();
            answer.extend_from_slice(&body);
            HttpResponse::Created()
                .insert_header(("x-app", "yes"))
                .body(answer)
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().finish()
        }
        "/big" => HttpResponse::Ok().body(vec![b'x'; MAX_BODY + 1]),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// A cloud request through the Router.
fn cloud_call(op: &str, resource: &str, content: Value) -> Message {
    Message::new("router_servicebus", "user", Operation::parse(op), resource).with_content(content)
}

fn target_change(op: Operation, resource: &str, content: Value) -> Message {
    Message::new("router_servicebus", "user", op, resource).with_content(content)
}

/// The `{header, status_code, body}` of an upload reply, body decoded.
fn answer_of(reply: &Message) -> (u64, Value, Vec<u8>) {
    let body = decode_bytes(reply.content["body"].as_str().unwrap()).unwrap();
    (
        reply.content["status_code"].as_u64().unwrap(),
        reply.content["header"].clone(),
        body,
    )
}

fn db_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("edgecore.db").display().to_string()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn cloud_request_reaches_the_app_and_its_answer_goes_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 10).await;
    let mut app = LocalApp::start();
    let request = cloud_call(
        "POST",
        &format!("{}:/echo?x=1", app.port),
        json!({
            "header": {"X-Test": ["from-cloud"], "Host": ["cloud:9443"]},
            "body": encode_bytes(b"hello"),
            "method": "POST",
            "url": "/rest/echo"
        }),
    );
    h.send(request.clone()).await;

    let seen = app.next_seen().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/echo?x=1");
    assert_eq!(seen.header.as_deref(), Some("from-cloud"));
    assert_eq!(seen.body, b"hello");

    let reply = h.next_up().await;
    assert_eq!(reply.parent_id(), Some(request.id()));
    assert_eq!(*reply.operation(), Operation::Upload);
    assert_eq!(reply.route.source, "servicebus");
    assert_eq!(reply.route.group, "user");
    let (status, header, body) = answer_of(&reply);
    assert_eq!(status, 201);
    assert_eq!(header["X-App"], json!(["yes"]));
    assert_eq!(body, b"got:hello");

    // Stopping the module closes the listener for local apps.
    let addr = h.addr;
    h.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn failures_become_error_replies() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 10).await;
    let get = json!({"method": "GET", "header": null, "body": null});
    for (resource, content, code) in [
        ("no-port-here".to_owned(), get.clone(), 400),
        ("0:/a".to_owned(), get.clone(), 400),
        ("70000:/a".to_owned(), get.clone(), 400),
        ("8080:/a".to_owned(), json!("not an object"), 400),
        ("8080:/a".to_owned(), json!({"body": "%%%"}), 400),
        (format!("{}:/a", closed_port()), get.clone(), 404),
    ] {
        let request = cloud_call("upload", &resource, content);
        h.send(request.clone()).await;
        let reply = h.next_up().await;
        assert_eq!(reply.parent_id(), Some(request.id()), "{resource}");
        assert_eq!(*reply.operation(), Operation::Upload);
        let (status, header, body) = answer_of(&reply);
        assert_eq!(
            status,
            code,
            "{resource}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(header["Server"], json!(["kubeedge-edgecore"]));
        assert!(!body.is_empty());
    }

    // An operation ServiceBus does not have: an error reply.
    let odd = cloud_call("insert", "8080:/a", get);
    h.send(odd.clone()).await;
    let reply = h.next_up().await;
    assert_eq!(reply.parent_id(), Some(odd.id()));
    assert_eq!(*reply.operation(), Operation::Error);
    assert!(reply.content.as_str().unwrap().contains("insert"));

    // EdgeHub's connection broadcast to the group is not answered: the
    // next message up answers the bad start sent after it.
    h.send(proto::modules::connection_message("bus", true))
        .await;
    let bad_start = target_change(Operation::Start, "", Value::Null);
    h.send(bad_start.clone()).await;
    let refused = h.next_up().await;
    assert_eq!(
        refused.parent_id(),
        Some(bad_start.id()),
        "only the bad start answers"
    );
    assert_eq!(*refused.operation(), Operation::Error);
    h.stop().await;
}

#[tokio::test]
async fn slow_and_oversized_answers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 1).await;
    let app = LocalApp::start();
    let started = Instant::now();
    h.send(cloud_call(
        "GET",
        &format!("{}:/slow", app.port),
        json!({"method": "GET"}),
    ))
    .await;
    h.send(cloud_call(
        "GET",
        &format!("{}:/big", app.port),
        json!({"method": "GET"}),
    ))
    .await;
    let mut codes = vec![
        answer_of(&h.next_up().await).0,
        answer_of(&h.next_up().await).0,
    ];
    codes.sort_unstable();
    assert_eq!(codes, [500, 504]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout is 1 s"
    );
    h.stop().await;
}

#[tokio::test]
async fn target_urls_persist_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let h = Harness::start(&db, 10).await;
    // KubeEdge's form (the URL is the resource), then Apiary's lists.
    h.send(target_change(
        Operation::Start,
        "http://cloud:9000/a",
        Value::Null,
    ))
    .await;
    h.send(target_change(
        Operation::Start,
        "",
        json!({"urls": ["http://cloud:9000/b", "http://cloud:9000/c"]}),
    ))
    .await;
    // A stop as KubeEdge's Router spells it (path.Join ate a slash).
    h.send(target_change(
        Operation::Stop,
        "http:/cloud:9000/b",
        Value::Null,
    ))
    .await;
    h.until_allowed("http://cloud:9000/c", true).await;
    h.until_allowed("http://cloud:9000/b", false).await;
    h.stop().await;

    let mut h = Harness::start(&db, 10).await;
    assert_eq!(
        targets::list(&h.db).await.unwrap(),
        ["http://cloud:9000/a", "http://cloud:9000/c"]
    );
    let post = |url: &str| json!({"method": "GET", "targetURL": url, "payload": null}).to_string();
    let (status, _) = h.post(post("http://cloud:9000/b")).await;
    assert_eq!(status, 403);
    let client = tokio::spawn(post_to(h.addr, post("http://cloud:9000/a")));
    let request = h.next_up().await;
    assert_eq!(request.resource(), "http://cloud:9000/a");
    assert!(h.bus.respond(request.reply("ok")));
    assert_eq!(client.await.unwrap().0, 200);
    h.stop().await;
}

/// Posts `body` to the listener at `addr` (any path will do) as a local
/// app does; the status and the parsed answer.
async fn post_to(addr: SocketAddr, body: impl Into<reqwest::Body>) -> (u16, AppResponse) {
    let client = super::call::plain_http_client(WAIT).unwrap();
    let response = client
        .post(format!("http://{addr}/any/path"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: AppResponse = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.code, status, "the JSON code is the HTTP status");
    (status, answer)
}

#[tokio::test]
async fn app_request_goes_to_the_cloud_and_the_answer_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 10).await;
    let url = "http://cloud.example:8080/report";
    h.send(target_change(Operation::Start, url, Value::Null))
        .await;
    h.until_allowed(url, true).await;

    let body = json!({"method": "POST", "targetURL": url, "payload": {"temp": 21}}).to_string();
    let client = tokio::spawn(post_to(h.addr, body.clone()));
    let request = h.next_up().await;
    assert_eq!(*request.operation(), Operation::Upload);
    assert_eq!(request.route.source, "servicebus");
    assert_eq!(request.route.group, "user");
    assert_eq!(request.resource(), url);
    assert!(request.header.sync, "sent as a request");
    // The content is the app's body, as Go sends a []byte: base64.
    let sent = decode_bytes(request.content.as_str().unwrap()).unwrap();
    assert_eq!(sent, body.as_bytes());
    assert!(h.bus.respond(request.reply("stored 1 reading")));
    let (status, answer) = client.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer.body, "stored 1 reading");

    // The cloud answers with an error: 502, the reason passed on.
    let client = tokio::spawn(post_to(h.addr, body));
    let request = h.next_up().await;
    assert!(h.bus.respond(request.error_reply("no rule")));
    let (status, answer) = client.await.unwrap();
    assert_eq!(status, 502);
    assert!(answer.msg.contains("no rule"), "{}", answer.msg);
    h.stop().await;
}

#[tokio::test]
async fn app_requests_that_cannot_go_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 10).await;
    let url = "http://cloud.example:8080/report";
    h.send(target_change(Operation::Start, "", json!([url])))
        .await;
    h.until_allowed(url, true).await;

    let (status, answer) = h.post("{not json").await;
    assert_eq!(status, 400);
    assert!(answer.msg.contains("JSON"), "{}", answer.msg);
    let (status, answer) = h.post(r#"{"method":"GET"}"#).await;
    assert_eq!(status, 400);
    assert!(answer.msg.contains("targetURL"), "{}", answer.msg);
    let other = json!({"method": "GET", "targetURL": "http://elsewhere/"}).to_string();
    let (status, answer) = h.post(other).await;
    assert_eq!(status, 403);
    assert!(answer.msg.contains("http://elsewhere/"), "{}", answer.msg);
    let (status, _) = h.post(vec![b' '; MAX_BODY + 1]).await;
    assert_eq!(status, 413);

    let allowed = json!({"method": "GET", "targetURL": url}).to_string();
    h.connected.send_replace(false);
    let started = Instant::now();
    let (status, _) = h.post(allowed.clone()).await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    // Nothing of the above reached the cloud.
    assert!(h.up.try_recv().is_err());
    h.stop().await;
}

#[tokio::test]
async fn unanswered_app_request_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&db_in(&dir), 1).await;
    let url = "http://cloud.example/slow";
    h.send(target_change(Operation::Start, url, Value::Null))
        .await;
    h.until_allowed(url, true).await;
    let client = tokio::spawn(post_to(
        h.addr,
        json!({"method": "GET", "targetURL": url}).to_string(),
    ));
    let request = h.next_up().await;
    let (status, answer) = client.await.unwrap();
    assert_eq!(status, 504, "{}", answer.msg);
    // A late answer finds nobody waiting.
    assert!(!h.bus.respond(request.reply("too late")));
    h.stop().await;
}
