# A root module that calls the wrapper module once per team and passes its outputs through.

terraform {
  required_version = ">= 1.0"
  required_providers {
    compliance = {
      source  = "compliance-monitor/compliance"
      version = ">= 0.1.0"
    }
  }
}

variable "endpoint_url" {
  description = "One endpoint for every AWS service (a local emulator); null for AWS itself."
  type        = string
  default     = null
}

provider "compliance" {
  region       = "us-east-1"
  endpoint_url = var.endpoint_url
}

module "payments" {
  source              = "../modules/compliance-monitor"
  team                = "payments"
  alert_email         = "payments-oncall@example.com"
  extra_required_tags = ["DataClass"]
}

module "search" {
  source      = "../modules/compliance-monitor"
  team        = "search"
  alert_email = "search-oncall@example.com"
}

output "buckets" {
  value = [module.payments.bucket_name, module.search.bucket_name]
}

output "payments_topic_arn" {
  value = module.payments.topic_arn
}
