output "bucket_name" {
  value = compliance_monitor.this.bucket_name
}

output "topic_arn" {
  value = compliance_monitor.this.topic_arn
}

output "scanner_function_name" {
  value = compliance_monitor.this.scanner_function_name
}

output "scanner_function_arn" {
  value = compliance_monitor.this.scanner_function_arn
}

output "reporter_function_name" {
  value = compliance_monitor.this.reporter_function_name
}

output "reporter_function_arn" {
  value = compliance_monitor.this.reporter_function_arn
}

output "dashboard_name" {
  value = compliance_monitor.this.dashboard_name
}

output "scanner_log_group_name" {
  value = compliance_monitor.this.scanner_log_group_name
}

output "reporter_log_group_name" {
  value = compliance_monitor.this.reporter_log_group_name
}
