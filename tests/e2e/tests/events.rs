//! The event-driven pieces end to end: made by default, each one's drift shown and repaired,
//! removed by `event_driven = false`, gone after destroy.

mod common;

use common::{flat, pieces, sdk, stack_config, stack_workdir};
use e2e::{text, Aws};

fn plan_code(w: &e2e::Workdir) -> (i32, String) {
    let out = w.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), text(&out))
}

fn event_pieces(all: &[String]) -> Vec<String> {
    all.iter()
        .filter(|p| {
            p.starts_with("queue ")
                || p.starts_with("mapping ")
                || p.contains("compliance-changes-")
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_pieces_are_made_repaired_removed_and_destroyed() {
    let aws = Aws::plain();
    let s = "ev";
    let w = stack_workdir(&aws, "events", &stack_config(&aws, s, ""));
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let made = event_pieces(&pieces(&aws.moto, s).await);
    assert_eq!(
        made,
        [
            "mapping compliance-events-ev -> compliance-scanner-ev",
            "queue compliance-events-dlq-ev",
            "queue compliance-events-ev",
            "rule compliance-changes-ev",
        ]
    );
    let cfg = sdk(&aws.moto).await;
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let rule = events
        .describe_rule()
        .name("compliance-changes-ev")
        .send()
        .await
        .expect("rule");
    let pattern: serde_json::Value =
        serde_json::from_str(rule.event_pattern().expect("pattern")).expect("JSON");
    assert_eq!(pattern["source"], serde_json::json!(["aws.ec2", "aws.tag"]));
    let url = sqs
        .get_queue_url()
        .queue_name("compliance-events-ev")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attrs = attrs.attributes().expect("attributes");
    assert_eq!(
        attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .map(String::as_str),
        Some("1800"),
        "six times the 300 s timeout"
    );
    let mapping = lambda
        .list_event_source_mappings()
        .function_name("compliance-scanner-ev")
        .send()
        .await
        .expect("mappings");
    let mapping = mapping
        .event_source_mappings()
        .first()
        .expect("a mapping")
        .clone();
    assert_eq!(mapping.batch_size(), Some(500));

    // Drift of each: the rule's target removed, the queue's visibility changed, the mapping
    // turned off, the dead-letter queue deleted. The plan names each; apply repairs them.
    events
        .remove_targets()
        .rule("compliance-changes-ev")
        .ids("compliance-events-queue")
        .send()
        .await
        .expect("remove target");
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "30",
        )
        .send()
        .await
        .expect("visibility");
    lambda
        .update_event_source_mapping()
        .uuid(mapping.uuid().expect("uuid"))
        .batch_size(10)
        .send()
        .await
        .expect("batch size");
    let dlq = sqs
        .get_queue_url()
        .queue_name("compliance-events-dlq-ev")
        .send()
        .await
        .expect("dlq")
        .queue_url
        .expect("url");
    sqs.delete_queue()
        .queue_url(&dlq)
        .send()
        .await
        .expect("delete dlq");
    w.ok(&["refresh", "-no-color", "-input=false"]);
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "{out}");
    let out = flat(&out);
    for want in [
        "change rule compliance-changes-ev: targets is",
        "SQS queue compliance-events-ev: VisibilityTimeout is",
        "event source mapping compliance-events-ev -> compliance-scanner-ev: batch size is 10, want 500",
        "SQS queue compliance-events-dlq-ev: missing",
    ] {
        assert!(out.contains(want), "the plan names {want:?}:\n{out}");
    }
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let (code, out) = plan_code(&w);
    assert_eq!(code, 0, "repaired:\n{out}");

    // event_driven = false removes the four pieces and nothing else.
    w.write(&stack_config(&aws, s, "  event_driven = false"));
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let all = pieces(&aws.moto, s).await;
    assert_eq!(event_pieces(&all), Vec::<String>::new(), "{all:?}");
    assert_eq!(all.len(), 15, "the other pieces stay: {all:?}");
    let (code, out) = plan_code(&w);
    assert_eq!(code, 0, "{out}");

    // And back on, then destroy leaves nothing.
    w.write(&stack_config(&aws, s, ""));
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(event_pieces(&pieces(&aws.moto, s).await).len(), 4);
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(pieces(&aws.moto, s).await, Vec::<String>::new());
}
