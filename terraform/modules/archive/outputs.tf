output "bucket_name" {
  description = "Name of the archive bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the archive bucket."
  value       = aws_s3_bucket.this.arn
}

output "bucket_region" {
  description = "Region of the archive bucket."
  value       = aws_s3_bucket.this.region
}

output "writer_policy_json" {
  description = "IAM policy (JSON) for the writer roles: list the bucket, put and get its objects, use the key for that."
  value = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListArchiveBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.this.arn]
      },
      {
        Sid      = "ReadWriteArchiveObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = ["${aws_s3_bucket.this.arn}/*"]
      },
      {
        Sid      = "UseArchiveKey"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = [var.kms_key_arn]
      },
    ]
  })
}
