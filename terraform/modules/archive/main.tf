locals {
  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
  })

  bucket_name = var.bucket_name != null ? var.bucket_name : "${var.name}-mongodb-archive-${data.aws_caller_identity.current.account_id}"
}

data "aws_caller_identity" "current" {}

# The MongoDB archive written at stage 5 (export before MongoDB is removed).
resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18:Access logs need a second log bucket per environment; writes are limited to the tools role by the bucket policy and the account's CloudTrail covers API calls.
  # checkov:skip=CKV_AWS_144:Cross-region replication needs a second region and key, an account-level decision; the bucket is versioned and lazyshift records the archive checksum.
  # checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; the pipeline records the archive checksum itself.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy

  tags = merge(local.tags, { Name = local.bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.manage_lifecycle ? 1 : 0

  bucket = aws_s3_bucket.this.id

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

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "OnlyTheToolsHostsWrite"
        Effect    = "Deny"
        Principal = "*"
        Action    = ["s3:PutObject"]
        Resource  = ["${aws_s3_bucket.this.arn}/*"]
        Condition = { StringNotEquals = { "aws:PrincipalArn" = var.writer_role_arns } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}
