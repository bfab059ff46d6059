//! The service killed with SIGKILL mid-burst: no order is left without its items, and every
//! create the client saw succeed is stored.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{order_body, spawn_binary};

#[tokio::test]
async fn a_sigkill_in_the_middle_of_a_burst_leaves_no_order_without_its_items() {
    let db = test_support::postgres::fresh_database().await;
    let (mut service, base) = spawn_binary(&db.url).await;
    let client = reqwest::Client::new();

    // 8 writers create 5-item orders as fast as they can; the kill lands once 100 succeeded.
    let succeeded = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, succeeded) = (client.clone(), base.clone(), succeeded.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let mut body = order_body(&format!("KILL-{w}-{i}"));
                let item = body["items"][0].clone();
                body["items"] = Value::Array(vec![item; 5]);
                let Ok(r) = client
                    .post(format!("{base}/api/v1/orders"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(order) = r.json::<Value>().await else {
                    return;
                };
                succeeded
                    .lock()
                    .await
                    .push(order["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    test_support::eventually("100 orders created", Duration::from_secs(60), || {
        let succeeded = succeeded.clone();
        async move { (succeeded.lock().await.len() >= 100).then_some(()) }
    })
    .await;
    service.kill_hard();
    for w in writers {
        let _ = w.await;
    }

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) <> 5",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "orders with missing items after SIGKILL");
    let without_event: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_id = o.id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        without_event, 0,
        "orders without their outbox event after SIGKILL"
    );
    let acknowledged = succeeded.lock().await.clone();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])")
        .bind(&acknowledged)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        acknowledged.len(),
        "an acknowledged order was lost"
    );
}
