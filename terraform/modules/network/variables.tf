variable "name" {
  description = "Name prefix for every resource (e.g. lazyshift-dev)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "project" {
  description = "Value of the Project tag."
  type        = string
  default     = "lazyshift"
}

variable "environment" {
  description = "Value of the Environment tag (dev, staging or prod)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; subnets are carved out of it (/20 per subnet for a /16)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be a valid IPv4 CIDR block with a prefix between /16 and /24."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread the subnets over (at least two). One public and one private subnet per zone."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list at least two distinct zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper, dev) instead of one per zone (prod)."
  type        = bool
  default     = true
}

variable "admin_cidrs" {
  description = "CIDR blocks allowed to reach the bastion on SSH (22). Never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "admin_cidrs must be valid IPv4 CIDR blocks and none may be a /0 (open to the internet)."
  }
}

variable "enable_jenkins_agent" {
  description = "Create the security group of a Jenkins agent and let it reach the bastion on SSH (the pipeline's Ansible jumps through the bastion)."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days (at least 365)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a CloudWatch retention value of at least one year (365, 400, 545, 731, ...)."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the VPC flow log group."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "enable_s3_endpoint" {
  description = "Add an S3 gateway endpoint to the private route tables (archive uploads bypass the NAT)."
  type        = bool
  default     = true
}

variable "api_emulator" {
  description = <<-EOT
    TEST ONLY. true when the provider talks to an AWS API emulator (moto), which does not
    read back the description of a rule whose source is a security group: such rules are
    then created without one so a re-plan converges. Keep false for real environments.
  EOT
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
