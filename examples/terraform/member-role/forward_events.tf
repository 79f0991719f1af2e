# Optional (forward_events = true): sends this account's EC2 changes to the monitoring account's
# default event bus, where the stack's change rule puts them on the scanner's queue, so they are
# judged within a minute instead of at the next scheduled scan.
#
# EventBridge rules are regional: this rule forwards the changes of the region of the provider the
# module runs with. For every other scanned region, add the same rule and target there (see the
# README) with the role this file makes (output forward_events_role_arn).

locals {
  # The stack's change rule's event pattern, unchanged (provider/src/aws/changes.rs, pattern()):
  # an instance entering running, an instance's tag change, and the CloudTrail calls that can open
  # a group or change an instance's groups or tags.
  change_pattern = <<-PATTERN
    {
      "source": ["aws.ec2", "aws.tag"],
      "detail-type": [
        "EC2 Instance State-change Notification",
        "Tag Change on Resource",
        "AWS API Call via CloudTrail"
      ],
      "$or": [
        {"detail": {"state": ["running"]}},
        {"detail": {"service": ["ec2"], "resource-type": ["instance"]}},
        {"detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": [
          "AuthorizeSecurityGroupIngress",
          "ModifySecurityGroupRules",
          "ModifyInstanceAttribute",
          "ModifyNetworkInterfaceAttribute",
          "CreateTags",
          "DeleteTags",
          "RunInstances"
        ]}}
      ]
    }
  PATTERN
}

data "aws_iam_policy_document" "events_trust" {
  count = var.forward_events ? 1 : 0

  statement {
    sid     = "EventBridge"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "put_events" {
  count = var.forward_events ? 1 : 0

  statement {
    sid       = "PutToMonitorBus"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [var.monitor_event_bus_arn]
  }

  # Checked here, the first thing that needs the ARN.
  lifecycle {
    precondition {
      condition     = var.monitor_event_bus_arn != null
      error_message = "forward_events needs monitor_event_bus_arn: the default event bus of the account and region that run the compliance monitor."
    }
  }
}

data "aws_iam_policy_document" "read_interfaces" {
  count = var.forward_events ? 1 : 0

  statement {
    sid     = "ReadInterfaces"
    effect  = "Allow"
    actions = ["ec2:DescribeNetworkInterfaces"]
    # Describe calls support no resource-level permissions.
    resources = ["*"]
  }
}

# The role EventBridge uses to put this account's events on the monitoring account's bus (required
# when the bus admits an organization; recommended by AWS for every bus target).
resource "aws_iam_role" "forward_events" {
  count = var.forward_events ? 1 : 0

  name                 = var.forward_events_role_name
  description          = "Lets EventBridge forward this account's EC2 changes to the compliance monitor's bus (${coalesce(var.monitor_event_bus_arn, "unset")})."
  assume_role_policy   = data.aws_iam_policy_document.events_trust[0].json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "forward_events" {
  count = var.forward_events ? 1 : 0

  name   = "compliance-forward-events"
  role   = aws_iam_role.forward_events[0].id
  policy = data.aws_iam_policy_document.put_events[0].json
}

# The event mode resolves an interface's change to its instance, and finds a changed group on an
# instance's second interface: one more read-only call for the member role.
resource "aws_iam_role_policy" "read_interfaces" {
  count = var.forward_events ? 1 : 0

  name   = "compliance-scanner-read-interfaces"
  role   = aws_iam_role.member.id
  policy = data.aws_iam_policy_document.read_interfaces[0].json
}

resource "aws_cloudwatch_event_rule" "forward_events" {
  count = var.forward_events ? 1 : 0

  name           = var.forward_events_rule_name
  description    = "EC2 changes the compliance monitor judges at once, forwarded to its account's default bus."
  event_bus_name = "default"
  event_pattern  = local.change_pattern
  tags           = var.tags
}

resource "aws_cloudwatch_event_target" "forward_events" {
  count = var.forward_events ? 1 : 0

  rule           = aws_cloudwatch_event_rule.forward_events[0].name
  event_bus_name = "default"
  target_id      = "compliance-monitor-bus"
  arn            = var.monitor_event_bus_arn
  role_arn       = aws_iam_role.forward_events[0].arn
}
