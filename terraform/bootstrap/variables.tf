variable "project" {
  description = "Project name: prefix of the state bucket's name."
  type        = string
  default     = "lazyshift"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "Region of the state bucket (TF_STATE_REGION for make stage0)."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten state version is kept (every apply writes one)."
  type        = number
  default     = 365

  validation {
    condition     = var.noncurrent_version_days >= 30
    error_message = "Keep overwritten state versions at least 30 days."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy remove a non-empty state bucket (tests only; never for a real account)."
  type        = bool
  default     = false
}

variable "api_emulator" {
  description = "TEST ONLY: true against an AWS API emulator (moto), which does not report the lifecycle rule the provider waits for and ignores the policy's TLS condition; both are then left out."
  type        = bool
  default     = false
}
