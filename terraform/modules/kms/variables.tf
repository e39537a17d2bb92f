variable "name" {
  description = "Name prefix; the key gets the alias alias/<name>."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{3,200}$", var.name))
    error_message = "name may only hold letters, digits, '/', '_' and '-' (3-200 characters)."
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

variable "deletion_window_in_days" {
  description = "Waiting period before a deleted key is gone (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
