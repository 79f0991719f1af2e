variable "scanner_role_arn" {
  description = "ARN of the scanner's IAM role in the account that runs the compliance monitor, e.g. arn:aws:iam::111111111111:role/compliance-scanner-prod. The only principal the member role trusts."
  type        = string

  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/.+$", var.scanner_role_arn))
    error_message = "scanner_role_arn must be an IAM role ARN, arn:<partition>:iam::<12-digit account>:role/<name>."
  }
}

variable "role_name" {
  description = "Name of the member role (path /): the scanner assumes arn:aws:iam::<account>:role/<role_name> in every member account, so keep it the same across the organisation (the compliance_monitor's member_role_name)."
  type        = string
  default     = "ComplianceScannerMember"

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.role_name))
    error_message = "role_name must be 1-64 letters, digits or + = , . @ _ - (IAM's rule for role names)."
  }
}

variable "external_id" {
  description = "When set, the scanner must pass this ExternalId to AssumeRole (the compliance_monitor's member_external_id). null: no condition."
  type        = string
  default     = null

  validation {
    # RE2 caps a repeat count at 1000, so the length is checked apart.
    condition = var.external_id == null || (
      can(regex("^[\\w+=,.@:/-]+$", var.external_id)) &&
      try(length(var.external_id) >= 2 && length(var.external_id) <= 1224, false)
    )
    error_message = "external_id must be 2-1224 letters, digits or + = , . @ : / _ - (STS's rule for ExternalId)."
  }
}

variable "permissions_boundary" {
  description = "ARN of a permissions boundary policy to attach, where the organisation requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}

variable "forward_events" {
  description = "Also forward this account's EC2 changes (the stack's change rule's event pattern) to the monitoring account's default event bus, so the scanner's event mode judges them within a minute: an EventBridge rule and target in the provider's region, the IAM role EventBridge uses for it, and ec2:DescribeNetworkInterfaces for the member role. Needs monitor_event_bus_arn, and the monitoring bus's policy must admit this account (docs/events.md)."
  type        = bool
  default     = false
  nullable    = false
}

variable "monitor_event_bus_arn" {
  description = "With forward_events: ARN of the default event bus in the account and region that run the compliance monitor, e.g. arn:aws:events:us-east-1:111111111111:event-bus/default."
  type        = string
  default     = null

  validation {
    condition     = var.monitor_event_bus_arn == null || can(regex("^arn:aws(-cn|-us-gov)?:events:[a-z0-9-]+:[0-9]{12}:event-bus/default$", var.monitor_event_bus_arn))
    error_message = "monitor_event_bus_arn must be a default event bus ARN, arn:<partition>:events:<region>:<12-digit account>:event-bus/default."
  }
}

variable "forward_events_role_name" {
  description = "With forward_events: name of the role EventBridge uses to put events on the monitoring bus."
  type        = string
  default     = "ComplianceForwardEvents"

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.forward_events_role_name))
    error_message = "forward_events_role_name must be 1-64 letters, digits or + = , . @ _ - (IAM's rule for role names)."
  }
}

variable "forward_events_rule_name" {
  description = "With forward_events: name of the forwarding rule on this account's default bus."
  type        = string
  default     = "compliance-forward-changes"

  validation {
    condition     = can(regex("^[\\w.-]{1,64}$", var.forward_events_rule_name))
    error_message = "forward_events_rule_name must be 1-64 letters, digits or . _ - (EventBridge's rule for rule names)."
  }
}
