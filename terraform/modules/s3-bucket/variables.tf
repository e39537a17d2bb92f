variable "bucket" {
  description = "Bucket name (globally unique: callers derive it from the account id)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "bucket must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, dashes)."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the objects (SSE-KMS, bucket key on)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "attach_policy" {
  description = "Attach the bucket policy (plain HTTP denied, plus policy_statements). Keep true: false exists only for an AWS API emulator (moto) that denies every object request under the TLS condition."
  type        = bool
  default     = true
}

variable "policy_statements" {
  description = "Extra bucket policy statements, for every principal (narrow them with conditions): paths are object paths under the bucket (\"*\" for all objects), \"\" for the bucket itself."
  type = list(object({
    sid       = string
    effect    = string
    actions   = list(string)
    paths     = list(string)
    condition = map(map(list(string)))
  }))
  default = []
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (tests and throwaway environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource (Name is added: the bucket name)."
  type        = map(string)
  default     = {}
}
