locals {
  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
  })

  bucket_name = var.bucket_name != null ? var.bucket_name : "${var.name}-mongodb-archive-${data.aws_caller_identity.current.account_id}"
}

data "aws_caller_identity" "current" {}

# The MongoDB archive written at stage 5 (export before MongoDB is removed): a private
# bucket (modules/s3-bucket) that only the tools hosts may write to.
module "bucket" {
  source = "../s3-bucket"

  bucket        = local.bucket_name
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tags          = local.tags

  policy_statements = [{
    sid       = "OnlyTheToolsHostsWrite"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    paths     = ["*"]
    condition = { StringNotEquals = { "aws:PrincipalArn" = var.writer_role_arns } }
  }]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.manage_lifecycle ? 1 : 0

  bucket = module.bucket.id

  rule {
    id     = "archive"
    status = "Enabled"

    # The whole bucket. An explicit empty prefix (rather than `filter {}`) is what S3 reads
    # back, so plans stay stable.
    filter {
      prefix = ""
    }

    transition {
      days          = var.transition_to_glacier_days
      storage_class = "GLACIER"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [module.bucket]
}

# The bucket's resources moved into modules/s3-bucket: existing states follow them.
moved {
  from = aws_s3_bucket.this
  to   = module.bucket.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_ownership_controls.this
  to   = module.bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_public_access_block.this
  to   = module.bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_versioning.this
  to   = module.bucket.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.this
  to   = module.bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_policy.this
  to   = module.bucket.aws_s3_bucket_policy.this[0]
}
