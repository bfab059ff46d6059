//! Sample events of every type validate against the schema files, and the schemas reject
//! events that break the contract.

use chrono::{TimeZone, Utc};
use order_events::schema::{SCHEMAS, current_schema};
use order_events::{
    CloudEvent, EventType, OrderCancelled, OrderEventData, OrderItem, OrderSnapshot,
    OrderStatusChanged, OrderUpdated, traceparent,
};
use serde_json::{Value, json};
use uuid::Uuid;

fn validator(event_type: EventType) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&current_schema(event_type))
        .expect("schema compiles")
}

fn snapshot(status: &str, version: i64) -> OrderSnapshot {
    let created = Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap();
    OrderSnapshot {
        order_id: Uuid::now_v7(),
        order_number: "0000000042".into(),
        status: status.into(),
        version,
        customer_id: "17100001".into(),
        currency: "EUR".into(),
        customer_reference: Some("PO-4711".into()),
        sales_organization: Some("1010".into()),
        distribution_channel: Some("10".into()),
        division: Some("00".into()),
        order_type: Some("OR".into()),
        requested_delivery_date: Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
        sap_order_number: None,
        total_net_amount: Some("25.000".into()),
        specifications: serde_json::Map::from_iter([(
            "IncotermsClassification".into(),
            json!("EXW"),
        )]),
        items: vec![OrderItem {
            item_number: 10,
            sku: "TG11".into(),
            quantity: "2".into(),
            unit: "PC".into(),
            unit_price: Some("12.50".into()),
            net_amount: Some("25.000".into()),
            specifications: serde_json::Map::from_iter([("color".into(), json!("red"))]),
            rejection_reason: None,
        }],
        created_at: created,
        updated_at: created + chrono::Duration::milliseconds(1500),
    }
}

fn samples() -> Vec<OrderEventData> {
    let mut linked = snapshot("created", 2);
    linked.sap_order_number = Some("4711".into());
    vec![
        OrderEventData::Created(snapshot("created", 1)),
        OrderEventData::Updated(OrderUpdated {
            order: linked,
            changed_fields: vec!["sap_order_number".into()],
        }),
        OrderEventData::StatusChanged(OrderStatusChanged {
            order: snapshot("confirmed", 3),
            previous_status: "created".into(),
        }),
        OrderEventData::Cancelled(OrderCancelled {
            order: snapshot("voided", 2),
            previous_status: "created".into(),
            reason: Some("SAP rejected the order".into()),
        }),
    ]
}

fn encode(data: OrderEventData) -> Value {
    let event = CloudEvent::for_order_change(
        Uuid::now_v7(),
        Utc::now(),
        data,
        Some("corr-1".into()),
        Some(traceparent::new_root()),
    );
    serde_json::from_slice(&event.encode()).unwrap()
}

fn errors(event_type: EventType, value: &Value) -> Vec<String> {
    validator(event_type)
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn a_sample_event_of_every_type_validates_against_its_schema() {
    let samples = samples();
    assert_eq!(samples.len(), EventType::ALL.len());
    for data in samples {
        let event_type = data.event_type();
        let value = encode(data);
        assert_eq!(value["type"], event_type.as_str());
        assert_eq!(value["dataschema"], event_type.dataschema());
        let errs = errors(event_type, &value);
        assert!(errs.is_empty(), "{event_type}: {errs:#?}\n{value:#}");
    }
}

#[test]
fn an_event_without_correlation_or_trace_still_validates() {
    let event = CloudEvent::for_order_change(
        Uuid::now_v7(),
        Utc::now(),
        OrderEventData::Created(snapshot("created", 1)),
        None,
        None,
    );
    let value: Value = serde_json::from_slice(&event.encode()).unwrap();
    assert!(value.get("correlationid").is_none());
    assert!(errors(EventType::OrderCreated, &value).is_empty());
}

#[test]
fn encoded_events_decode_back_to_the_same_typed_event() {
    for data in samples() {
        let event =
            CloudEvent::for_order_change(Uuid::now_v7(), Utc::now(), data, Some("c".into()), None);
        let decoded = CloudEvent::decode(&event.encode()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(decoded.subject, decoded.data.order().order_id.to_string());
    }
}

#[test]
fn the_schemas_reject_events_that_break_the_contract() {
    let base = encode(samples().remove(0));
    type Breaker = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(&str, Breaker)> = vec![
        (
            "missing id",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("id"))),
        ),
        (
            "wrong specversion",
            Box::new(|v| v["specversion"] = json!("0.3")),
        ),
        (
            "other type",
            Box::new(|v| v["type"] = json!("order.updated")),
        ),
        (
            "subject not a uuid",
            Box::new(|v| v["subject"] = json!("order-1")),
        ),
        ("bad time", Box::new(|v| v["time"] = json!("yesterday"))),
        (
            "bad traceparent",
            Box::new(|v| v["traceparent"] = json!("00-xyz")),
        ),
        (
            "decimal as number",
            Box::new(|v| v["data"]["items"][0]["quantity"] = json!(2)),
        ),
        ("no items", Box::new(|v| v["data"]["items"] = json!([]))),
        (
            "unknown data field",
            Box::new(|v| v["data"]["surprise"] = json!(true)),
        ),
        (
            "lowercase currency",
            Box::new(|v| v["data"]["currency"] = json!("eur")),
        ),
        (
            "created with version 2",
            Box::new(|v| v["data"]["version"] = json!(2)),
        ),
        (
            "missing status",
            Box::new(|v| drop(v["data"].as_object_mut().unwrap().remove("status"))),
        ),
    ];
    for (what, breaker) in broken {
        let mut value = base.clone();
        breaker(&mut value);
        assert!(
            !errors(EventType::OrderCreated, &value).is_empty(),
            "the schema accepted an event with {what}"
        );
    }
}

/// The events of an order's life, shaped as the order service publishes them (its integration
/// tests validate the real outbox rows against the same schemas).
fn life_samples() -> Vec<OrderEventData> {
    let mut rejected = snapshot("created", 3);
    rejected.items.push(OrderItem {
        item_number: 20,
        sku: "TG12".into(),
        quantity: "1".into(),
        unit: "PC".into(),
        unit_price: Some("10.00".into()),
        net_amount: Some("10.00".into()),
        specifications: serde_json::Map::new(),
        rejection_reason: Some("01".into()),
    });
    let mut cancelled = snapshot("cancelled", 4);
    for item in &mut cancelled.items {
        item.rejection_reason = Some("00".into());
    }
    cancelled.total_net_amount = Some("0".into());
    vec![
        OrderEventData::Updated(OrderUpdated {
            order: rejected,
            changed_fields: vec!["items".into(), "total_net_amount".into()],
        }),
        OrderEventData::StatusChanged(OrderStatusChanged {
            order: snapshot("billed", 5),
            previous_status: "delivered".into(),
        }),
        OrderEventData::Cancelled(OrderCancelled {
            order: cancelled,
            previous_status: "created".into(),
            reason: Some("customer withdrew".into()),
        }),
    ]
}

#[test]
fn an_updated_event_with_a_rejected_line_a_status_change_to_billed_and_a_cancel_validate() {
    for data in life_samples() {
        let event_type = data.event_type();
        let value = encode(data);
        let errs = errors(event_type, &value);
        assert!(errs.is_empty(), "{event_type}: {errs:#?}\n{value:#}");
    }
}

#[test]
fn every_schema_accepts_items_with_and_without_a_rejection_reason_and_refuses_a_bad_one() {
    for data in samples().into_iter().chain(life_samples()) {
        let event_type = data.event_type();
        let base = encode(data);
        let mut with = base.clone();
        with["data"]["items"][0]["rejection_reason"] = json!("Z1");
        assert!(errors(event_type, &with).is_empty(), "{event_type}");
        let mut without = base.clone();
        without["data"]["items"][0]
            .as_object_mut()
            .unwrap()
            .remove("rejection_reason");
        assert!(
            errors(event_type, &without).is_empty(),
            "{event_type}: events written before rejection_reason existed stay valid"
        );
        for bad in [json!("1"), json!("abc"), json!("z1"), json!(1)] {
            let mut broken = base.clone();
            broken["data"]["items"][0]["rejection_reason"] = bad.clone();
            assert!(
                !errors(event_type, &broken).is_empty(),
                "{event_type} accepted rejection_reason {bad}"
            );
        }
    }
}

#[test]
fn an_item_without_rejection_reason_decodes_as_open() {
    let item: OrderItem = serde_json::from_value(json!({
        "item_number": 10, "sku": "TG11", "quantity": "2", "unit": "PC",
        "unit_price": null, "net_amount": null, "specifications": {}
    }))
    .unwrap();
    assert_eq!(item.rejection_reason, None);
    let encoded = serde_json::to_value(&item).unwrap();
    assert!(
        encoded["rejection_reason"].is_null() && encoded.get("rejection_reason").is_some(),
        "published as an explicit null"
    );
}

#[test]
fn billed_is_in_every_status_vocabulary_the_contract_names() {
    let all = [
        "created",
        "confirmed",
        "shipped",
        "delivered",
        "billed",
        "cancelled",
        "voided",
    ];
    let updated = current_schema(EventType::OrderUpdated);
    assert_eq!(
        updated["properties"]["data"]["properties"]["status"]["enum"],
        json!(all)
    );
    for t in [EventType::OrderStatusChanged, EventType::OrderCancelled] {
        let s = current_schema(t);
        assert_eq!(
            s["properties"]["data"]["properties"]["previous_status"]["enum"],
            json!(all),
            "{t}"
        );
    }
}

#[test]
fn a_status_change_to_cancelled_is_not_a_valid_status_changed_event() {
    let value = encode(OrderEventData::StatusChanged(OrderStatusChanged {
        order: snapshot("cancelled", 2),
        previous_status: "created".into(),
    }));
    assert!(!errors(EventType::OrderStatusChanged, &value).is_empty());
}

#[test]
fn every_schema_file_is_listed_and_its_id_is_the_dataschema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SCHEMAS.iter().map(|(_, _, f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for (event_type, version, file, text) in SCHEMAS {
        assert_eq!(file, format!("{event_type}.v{version}.json"));
        let schema: Value = serde_json::from_str(text).unwrap();
        assert_eq!(schema["$id"], event_type.dataschema());
        assert_eq!(schema["properties"]["type"]["const"], event_type.as_str());
    }
}
