output "id" {
  description = "Name of the bucket (the bucket's id)."
  # The configured name rather than the id attribute: equal in AWS, and known at plan time.
  value = aws_s3_bucket.this.bucket
}

output "arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "region" {
  description = "Region of the bucket."
  value       = aws_s3_bucket.this.region
}

output "policy" {
  description = "The bucket policy (JSON), null when attach_policy is false."
  value       = one(aws_s3_bucket_policy.this[*].policy)
}
