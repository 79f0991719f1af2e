# A module that wraps compliance_monitor with an organisation's own defaults: every team gets the
# same rules, and only says who it is and where alerts go.

terraform {
  required_version = ">= 1.0"
  required_providers {
    compliance = {
      source  = "compliance-monitor/compliance"
      version = ">= 0.1.0"
    }
  }
}

variable "team" {
  description = "Team name; becomes the environment suffix and a tag."
  type        = string
}

variable "alert_email" {
  description = "Where the team's compliance alerts go."
  type        = string
}

variable "extra_required_tags" {
  description = "Tag keys the team requires on top of the organisation's."
  type        = list(string)
  default     = []
}

resource "compliance_monitor" "this" {
  environment_suffix = var.team
  alert_email        = var.alert_email
  required_tags      = concat(["Environment", "Owner", "CostCenter"], var.extra_required_tags)
  log_retention_days = 90
  force_destroy      = true
  tags = {
    Team = var.team
  }
}

output "bucket_name" {
  value = compliance_monitor.this.bucket_name
}

output "topic_arn" {
  value = compliance_monitor.this.topic_arn
}

output "scanner_function_name" {
  value = compliance_monitor.this.scanner_function_name
}

output "dashboard_name" {
  value = compliance_monitor.this.dashboard_name
}
