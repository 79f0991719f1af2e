# A plain use of the compliance monitor: one block deploys the whole stack.
#
# Against a local AWS emulator (moto or LocalStack), set endpoint_url, e.g.
#   terraform apply -var endpoint_url=http://127.0.0.1:5000
# Against AWS, leave it null and use your usual credentials.

terraform {
  required_version = ">= 1.0"
  required_providers {
    compliance = {
      source  = "compliance-monitor/compliance"
      version = ">= 0.1.0"
    }
  }
}

variable "environment_suffix" {
  description = "Suffix of every resource name; two stacks with different suffixes live side by side."
  type        = string
  default     = "dev"
}

variable "alert_email" {
  description = "Where compliance alerts are sent."
  type        = string
  default     = "compliance-team@example.com"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "endpoint_url" {
  description = "One endpoint for every AWS service (a local emulator); null for AWS itself."
  type        = string
  default     = null
}

provider "compliance" {
  region       = var.region
  endpoint_url = var.endpoint_url
  default_tags = {
    Project = "ComplianceMonitoring"
  }
}

resource "compliance_monitor" "this" {
  environment_suffix = var.environment_suffix
  alert_email        = var.alert_email

  # The demo's destroy removes the scan history with the stack, as the original design does.
  # Leave it unset (false) where the history is evidence: a destroy then refuses a bucket that
  # holds results. bucket_name overrides compliance-results-<suffix>, which S3's global names
  # make likely to be taken in real AWS.
  force_destroy = true
  # bucket_name = "acme-compliance-results-dev"

  # Everything below shows the defaults; delete what you do not change.
  required_tags           = ["Environment", "Owner", "CostCenter"]
  exempt_tag_key          = "ComplianceExempt"
  scan_schedule           = "rate(6 hours)"
  report_schedule         = "cron(0 0 * * ? *)"
  log_retention_days      = 30
  glacier_transition_days = 90
  lambda_memory_mb        = 256
  lambda_timeout_seconds  = 300

  tags = {
    Team = "platform"
  }
}
