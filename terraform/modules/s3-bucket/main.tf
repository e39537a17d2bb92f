# A private bucket as every bucket of this project wants it: ACLs off, all public access
# blocked, versioned, SSE-KMS with the caller's key (bucket key on) and a policy that denies
# plain HTTP. What differs between uses (lifecycle, who may write) stays with the caller:
# lifecycle rules as its own resource on `id`, extra statements through `policy_statements`.

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18:Access logs need a second log bucket per bucket; the account's CloudTrail covers API calls and versioning keeps every object version.
  # checkov:skip=CKV_AWS_144:Cross-region replication needs a second region and key, an account-level decision; the bucket is versioned.
  # checkov:skip=CKV2_AWS_62:Nothing consumes this bucket's events.
  # checkov:skip=CKV2_AWS_61:The lifecycle rule is the caller's (archive: Glacier, state: old versions), declared beside its call of this module; checkov does not follow it through nested modules.
  bucket        = var.bucket
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.bucket })
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

resource "aws_s3_bucket_policy" "this" {
  count = var.attach_policy ? 1 : 0

  bucket = aws_s3_bucket.this.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }],
      [for s in var.policy_statements : {
        Sid       = s.sid
        Effect    = s.effect
        Principal = "*"
        Action    = s.actions
        Resource  = [for path in s.paths : path == "" ? aws_s3_bucket.this.arn : "${aws_s3_bucket.this.arn}/${path}"]
        Condition = s.condition
      }]
    )
  })

  # S3 refuses a policy while the public access block is being created.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
