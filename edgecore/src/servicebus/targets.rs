//! The allowed cloud targets: KubeEdge's table `target_urls(url)` in
//! `database.dataSource`, filled by the cloud's `start` and emptied by its
//! `stop`, read when a local app asks for a request to the cloud.
//!
//! Which URLs a `start` or `stop` names ([`urls_of`], pure):
//!
//! - the message's resource, where KubeEdge's Router puts the one URL (its
//!   `node/<id>/` prefix is removed by the cloud before it is sent);
//! - and any URLs in the content: a JSON list of strings, or
//!   `{"urls": [...]}` (Apiary's form, for several at once). Other contents
//!   (older KubeEdge clouds send a rule id string) are ignored.
//!
//! KubeEdge's Router builds the resource of a `stop` with Go's `path.Join`,
//! which turns `http://host/x` into `http:/host/x`; a stop removes both that
//! string and its `scheme://` form, so the URL `start` added goes away.

use proto::Message;
use rusqlite::OptionalExtension as _;
use serde_json::Value;
use tokio_rusqlite::Connection;

use crate::db::{self, DbError};

/// The table, as KubeEdge names it.
pub(crate) const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS target_urls (url TEXT NOT NULL PRIMARY KEY);";

/// The longest URL accepted.
pub(crate) const MAX_URL_LEN: usize = 2048;

/// URLs one message may name, at most.
pub(crate) const MAX_URLS_PER_MESSAGE: usize = 1024;

/// The URLs a `start` or `stop` names, or why there are none usable.
pub(crate) fn urls_of(msg: &Message) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    if !msg.resource().is_empty() {
        urls.push(msg.resource().to_owned());
    }
    let listed = match msg.content_json() {
        Value::Array(items) => Some(items),
        Value::Object(mut obj) => match obj.remove("urls") {
            Some(Value::Array(items)) => Some(items),
            Some(_) => return Err("\"urls\" is not a list".to_owned()),
            None => None,
        },
        _ => None,
    };
    for item in listed.into_iter().flatten() {
        match item {
            Value::String(url) => urls.push(url),
            other => return Err(format!("a URL is not a string: {other}")),
        }
    }
    if urls.is_empty() {
        return Err("no URL in the resource or the content".to_owned());
    }
    if urls.len() > MAX_URLS_PER_MESSAGE {
        return Err(format!("more than {MAX_URLS_PER_MESSAGE} URLs"));
    }
    if let Some(bad) = urls
        .iter()
        .find(|u| u.len() > MAX_URL_LEN || u.trim().is_empty() || u.chars().any(char::is_control))
    {
        return Err(format!(
            "not a usable URL (empty, over {MAX_URL_LEN} bytes or with control characters): {:?}",
            bad.chars().take(80).collect::<String>()
        ));
    }
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// `url` and, if `path.Join` mangled it (`http:/host/x`), its repaired form.
pub(crate) fn stop_forms(url: &str) -> Vec<String> {
    let mut forms = vec![url.to_owned()];
    if let Some((scheme, rest)) = url.split_once(":/") {
        let is_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if is_scheme && !rest.starts_with('/') {
            forms.push(format!("{scheme}://{rest}"));
        }
    }
    forms
}

/// Opens (and creates if needed) the table in `path`.
pub(crate) async fn open(path: &str) -> Result<Connection, DbError> {
    db::open(path, SCHEMA).await
}

/// Adds `urls`; already present ones stay. Returns how many were new.
pub(crate) async fn add(conn: &Connection, urls: Vec<String>) -> Result<usize, DbError> {
    db::write(conn, move |tx| {
        let mut stmt = tx.prepare_cached("INSERT OR IGNORE INTO target_urls (url) VALUES (?1)")?;
        let mut added = 0;
        for url in &urls {
            added += stmt.execute([url])?;
        }
        Ok(added)
    })
    .await
}

/// Removes `urls` (each in its [`stop_forms`]). Returns how many rows went.
pub(crate) async fn remove(conn: &Connection, urls: Vec<String>) -> Result<usize, DbError> {
    db::write(conn, move |tx| {
        let mut stmt = tx.prepare_cached("DELETE FROM target_urls WHERE url = ?1")?;
        let mut removed = 0;
        for form in urls.iter().flat_map(|u| stop_forms(u)) {
            removed += stmt.execute([form])?;
        }
        Ok(removed)
    })
    .await
}

/// Whether `url` is allowed (exact match, as KubeEdge compares).
pub(crate) async fn contains(conn: &Connection, url: &str) -> Result<bool, DbError> {
    let url = url.to_owned();
    db::read(conn, move |c| {
        c.query_row(
            "SELECT 1 FROM target_urls WHERE url = ?1",
            [url],
            |_| Ok(()),
        )
        .optional()
        .map(|row| row.is_some())
    })
    .await
}

/// Every allowed URL, sorted.
pub(crate) async fn list(conn: &Connection) -> Result<Vec<String>, DbError> {
    db::read(conn, |c| {
        let mut stmt = c.prepare("SELECT url FROM target_urls ORDER BY url")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;
    use proto::Operation;
    use serde_json::json;

    fn start(resource: &str, content: Value) -> Message {
        Message::new("router_servicebus", "user", Operation::Start, resource).with_content(content)
    }

    #[test]
    fn urls_from_resource_and_content() {
        let m = start("http://cloud:9000/a", Value::Null);
        assert_eq!(urls_of(&m).unwrap(), ["http://cloud:9000/a"]);
        let m = start("", json!(["u2", "u1", "u2"]));
        assert_eq!(urls_of(&m).unwrap(), ["u1", "u2"]);
        let m = start("u0", json!({"urls": ["u1"]}));
        assert_eq!(urls_of(&m).unwrap(), ["u0", "u1"]);
        // A JSON list sent as a string is read too; a rule id is ignored.
        assert_eq!(urls_of(&start("", json!("[\"u3\"]"))).unwrap(), ["u3"]);
        assert_eq!(urls_of(&start("u4", json!("rule-id"))).unwrap(), ["u4"]);
    }

    #[test]
    fn unusable_urls_are_refused() {
        assert!(urls_of(&start("", Value::Null)).is_err());
        assert!(urls_of(&start("", json!({"urls": "u"}))).is_err());
        assert!(urls_of(&start("", json!([1]))).is_err());
        assert!(urls_of(&start("", json!(["a\nb"]))).is_err());
        assert!(urls_of(&start("", json!([" "]))).is_err());
        assert!(urls_of(&start(&"x".repeat(MAX_URL_LEN + 1), Value::Null)).is_err());
        let many: Vec<String> = (0..=MAX_URLS_PER_MESSAGE).map(|i| i.to_string()).collect();
        assert!(urls_of(&start("", json!(many))).is_err());
    }

    #[test]
    fn stop_repairs_path_join() {
        assert_eq!(
            stop_forms("http:/cloud:9000/a"),
            ["http:/cloud:9000/a", "http://cloud:9000/a"]
        );
        assert_eq!(stop_forms("http://cloud/a"), ["http://cloud/a"]);
        assert_eq!(stop_forms("/just/a/path"), ["/just/a/path"]);
    }

    #[tokio::test]
    async fn add_remove_contains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgecore.db").display().to_string();
        let conn = open(&path).await.unwrap();
        let urls = vec!["http://cloud/a".to_owned(), "http://cloud/b".to_owned()];
        assert_eq!(add(&conn, urls.clone()).await.unwrap(), 2);
        assert_eq!(add(&conn, urls).await.unwrap(), 0);
        assert!(contains(&conn, "http://cloud/a").await.unwrap());
        assert!(!contains(&conn, "http://cloud/c").await.unwrap());
        let gone = remove(&conn, vec!["http:/cloud/a".to_owned()])
            .await
            .unwrap();
        assert_eq!(gone, 1);
        assert_eq!(list(&conn).await.unwrap(), ["http://cloud/b"]);
    }
}
