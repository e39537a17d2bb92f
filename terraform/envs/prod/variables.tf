# Variables of the prod environment, with its defaults. They are passed unchanged to
# modules/stack, which validates them (see its variables.tf for the rules).

variable "project" {
  description = "Project name: prefix of every resource name and value of the Project tag."
  type        = string
  default     = "lazyshift"
}

variable "environment" {
  description = "Environment name: value of the Environment tag the Ansible inventory filters on."
  type        = string
  default     = "prod"
}

variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_cidr" {
  description = "CIDR block of the environment's VPC."
  type        = string
  default     = "10.41.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones (names) to spread subnets and hosts over, in the region; at least two. Listed explicitly so a zone AWS adds later never moves anything."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper) instead of one per zone."
  type        = bool
  default     = false
}

variable "admin_cidrs" {
  description = "CIDR blocks of the admins' networks allowed to SSH to the bastion. Required, never 0.0.0.0/0."
  type        = list(string)
}

variable "hosts" {
  description = <<-EOT
    Hosts per role: count, instance type and volume sizes (GiB). Roles: bastion, mongodb,
    mysql, source, client, tools, jenkins_agent. mongodb may drop to 0 after stage 5.
  EOT
  type = map(object({
    count            = number
    instance_type    = string
    root_volume_size = optional(number, 20)
    data_volume_size = optional(number, 0)
  }))
  default = {
    bastion       = { count = 1, instance_type = "t3.micro" }
    mongodb       = { count = 1, instance_type = "r6i.large", root_volume_size = 30, data_volume_size = 500 }
    mysql         = { count = 1, instance_type = "r6i.large", root_volume_size = 30, data_volume_size = 500 }
    source        = { count = 1, instance_type = "t3.small" }
    client        = { count = 2, instance_type = "m6i.large" }
    tools         = { count = 2, instance_type = "c6i.xlarge", root_volume_size = 50 }
    jenkins_agent = { count = 1, instance_type = "t3.medium", root_volume_size = 50 }
  }
}

variable "ami_id" {
  description = "Pin one AMI for every host (null: newest AMI matching ami_owners and ami_name_filter)."
  type        = string
  default     = null
}

variable "ami_owners" {
  description = "Owners searched by the AMI lookup (136693071363 is Debian's official AMI account)."
  type        = list(string)
  default     = ["136693071363"]
}

variable "ami_name_filter" {
  description = "Name pattern of the AMI lookup (Debian 12 for amd64: the release the lab runs)."
  type        = string
  default     = "debian-12-amd64-*"
}

variable "key_name" {
  description = "Existing EC2 key pair for SSH (null: none; reach hosts with SSM or keys placed by Ansible)."
  type        = string
  default     = null
}

variable "archive_force_destroy" {
  description = "Let terraform destroy remove a non-empty archive bucket."
  type        = bool
  default     = false
}

variable "api_emulator" {
  description = <<-EOT
    TEST ONLY. true when the provider talks to an AWS API emulator (moto) instead of AWS:
    settings the emulator does not implement (instance metadata options, detailed monitoring,
    the archive lifecycle rule, descriptions of group-to-group rules) are left out so apply and re-plan converge. Never set it for a
    real environment: IMDSv2 would not be enforced.
  EOT
  type        = bool
  default     = false
}

variable "retire_mongodb" {
  description = "Remove the MongoDB host and its data volume (make teardown, once stage 5's archive is recorded)."
  type        = bool
  default     = false
}

variable "snapshot_retain_count" {
  description = "Daily snapshots of each database data volume kept by the DLM policy."
  type        = number
  default     = 35
}
