variable "project" {
  description = "Project name: prefix of every resource name and value of the Project tag."
  type        = string
  default     = "lazyshift"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name: value of the Environment tag the Ansible inventory filters on."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "region" {
  description = "AWS region of the environment (the caller's aws provider must use the same one)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the environment's VPC."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Availability zones (names) to spread subnets and hosts over, in the region; at least two. Listed explicitly so a zone AWS adds later never moves anything."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 to 4 distinct zones."
  }

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^${var.region}[a-z]$", z))])
    error_message = "Every availability zone must be in var.region (e.g. eu-west-1a)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper) instead of one per zone."
  type        = bool
  default     = true
}

variable "admin_cidrs" {
  description = "CIDR blocks of the admins' networks allowed to SSH to the bastion. Required, never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "admin_cidrs must list at least one valid IPv4 CIDR block, none of them a /0."
  }
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

  validation {
    condition     = alltrue([for r in keys(var.hosts) : contains(["bastion", "mongodb", "mysql", "source", "client", "tools", "jenkins_agent"], r)])
    error_message = "hosts keys must be roles: bastion, mongodb, mysql, source, client, tools, jenkins_agent."
  }

  validation {
    condition     = alltrue([for r, h in var.hosts : h.count >= 0 && h.count <= 10 && floor(h.count) == h.count])
    error_message = "Each role's count must be a whole number between 0 and 10."
  }

  validation {
    condition     = alltrue([for r in ["bastion", "mongodb", "mysql", "source", "jenkins_agent"] : try(var.hosts[r].count, 0) <= 1])
    error_message = "bastion, mongodb, mysql, source and jenkins_agent are single hosts (count 0 or 1)."
  }

  validation {
    condition     = try(var.hosts["mysql"].count, 0) == 1 && try(var.hosts["bastion"].count, 0) == 1
    error_message = "An environment needs exactly one mysql host and one bastion."
  }

  validation {
    condition     = alltrue([for r in ["mongodb", "mysql"] : try(var.hosts[r].count, 0) == 0 || try(var.hosts[r].data_volume_size, 0) > 0])
    error_message = "Database roles (mongodb, mysql) need data_volume_size > 0."
  }
}

variable "ami_id" {
  description = "Pin one AMI for every host (null: newest AMI matching ami_owners and ami_name_filter)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or an AMI id (ami-...)."
  }
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

  validation {
    condition     = startswith(var.ami_name_filter, "debian-12-")
    error_message = "ami_name_filter must select Debian 12 images (debian-12-...): the lab tests that release."
  }
}

variable "key_name" {
  description = "Existing EC2 key pair for SSH (null: none; reach hosts with SSM or keys placed by Ansible)."
  type        = string
  default     = null
}

variable "archive_force_destroy" {
  description = "Let terraform destroy remove a non-empty archive bucket (keep false where the archive matters)."
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
  default     = 14

  validation {
    condition     = var.snapshot_retain_count >= 1 && var.snapshot_retain_count <= 1000
    error_message = "snapshot_retain_count must be between 1 and 1000."
  }
}
