output "bucket_name" {
  description = "Name of the archive bucket."
  value       = module.bucket.id
}

output "bucket_arn" {
  description = "ARN of the archive bucket."
  value       = module.bucket.arn
}

output "bucket_region" {
  description = "Region of the archive bucket."
  value       = module.bucket.region
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
        Resource = [module.bucket.arn]
      },
      {
        Sid      = "ReadWriteArchiveObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = ["${module.bucket.arn}/*"]
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
