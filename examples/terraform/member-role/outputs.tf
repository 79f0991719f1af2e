output "role_arn" {
  description = "ARN of the member role: what the scanner assumes in this account."
  value       = aws_iam_role.member.arn
}

output "role_name" {
  description = "Name of the member role."
  value       = aws_iam_role.member.name
}

output "forward_events_role_arn" {
  description = "With forward_events: ARN of the role EventBridge uses to forward changes (for the same rule in other regions); null otherwise."
  value       = one(aws_iam_role.forward_events[*].arn)
}

output "forward_events_rule_arn" {
  description = "With forward_events: ARN of the forwarding rule in the provider's region; null otherwise."
  value       = one(aws_cloudwatch_event_rule.forward_events[*].arn)
}
