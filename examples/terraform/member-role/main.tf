# The role a member account installs so the compliance scanner can read its fleet.
#
# It trusts exactly one principal, the scanner's role, and can do exactly three things:
# describe instances, security groups and regions. Nothing it allows changes anything.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 4.0"
    }
  }
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "ComplianceScanner"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.scanner_role_arn]
    }

    # Guards against the confused deputy when the scanner's account also serves others.
    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "read_fleet" {
  statement {
    sid    = "ReadFleet"
    effect = "Allow"
    actions = [
      "ec2:DescribeInstances",
      "ec2:DescribeRegions",
      "ec2:DescribeSecurityGroups",
    ]
    # The three Describe calls support no resource-level permissions.
    resources = ["*"]
  }
}

resource "aws_iam_role" "member" {
  name                 = var.role_name
  description          = "Lets the compliance scanner (${var.scanner_role_arn}) read this account's EC2 fleet."
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "read_fleet" {
  name   = "compliance-scanner-read-fleet"
  role   = aws_iam_role.member.id
  policy = data.aws_iam_policy_document.read_fleet.json
}
