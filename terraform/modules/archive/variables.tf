variable "name" {
  description = "Name prefix (e.g. lazyshift-dev); the bucket is <name>-mongodb-archive-<account id> unless bucket_name is set."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "bucket_name" {
  description = "Exact bucket name (null: derived from name and the account id, which keeps it globally unique)."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, dashes)."
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

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the archive objects."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "writer_role_arns" {
  description = "IAM role ARNs that may write archive objects (the tools hosts). The bucket policy denies PutObject to everyone else."
  type        = list(string)

  validation {
    condition     = alltrue([for a in var.writer_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", a))])
    error_message = "writer_role_arns must be IAM role ARNs."
  }
}

variable "transition_to_glacier_days" {
  description = "Days after which archive objects move to Glacier Flexible Retrieval."
  type        = number
  default     = 30

  validation {
    condition     = var.transition_to_glacier_days >= 1
    error_message = "transition_to_glacier_days must be at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten (noncurrent) archive versions are deleted."
  type        = number
  default     = 365

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (dev only; keep false where the archive matters)."
  type        = bool
  default     = false
}

variable "manage_lifecycle" {
  description = <<-EOT
    Create the lifecycle rule. Keep true: false exists only for tests against an AWS API
    emulator (moto) that ignores the x-amz-transition-default-minimum-object-size header,
    so the provider's wait for the rule to read back equal never ends.
  EOT
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
