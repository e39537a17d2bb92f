# terraform test: the shared private bucket, against a mocked AWS provider.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::lazyshift-test-bucket"
    }
  }
}

variables {
  bucket      = "lazyshift-test-bucket"
  kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  policy_statements = [{
    sid       = "OnlyWriters"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    paths     = ["*"]
    condition = { StringNotEquals = { "aws:PrincipalArn" = ["arn:aws:iam::123456789012:role/w"] } }
  }]
}

run "private_versioned_encrypted_tls_only" {
  command = apply

  assert {
    condition     = alltrue([aws_s3_bucket_public_access_block.this.block_public_acls, aws_s3_bucket_public_access_block.this.block_public_policy, aws_s3_bucket_public_access_block.this.ignore_public_acls, aws_s3_bucket_public_access_block.this.restrict_public_buckets])
    error_message = "All public access must be blocked."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced" && !aws_s3_bucket.this.force_destroy
    error_message = "ACLs are disabled and the bucket is not force-destroyed by default."
  }

  assert {
    condition     = one(aws_s3_bucket_versioning.this.versioning_configuration).status == "Enabled"
    error_message = "Versioning must be enabled."
  }

  assert {
    condition = alltrue([for r in aws_s3_bucket_server_side_encryption_configuration.this.rule :
    one(r.apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" && one(r.apply_server_side_encryption_by_default).kms_master_key_id == var.kms_key_arn && r.bucket_key_enabled])
    error_message = "Objects are encrypted with the caller's KMS key, bucket key on."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(output.policy).Statement :
      s.Effect == "Deny" && try(s.Condition.Bool["aws:SecureTransport"], null) == "false"
    ])
    error_message = "The bucket policy must deny plain HTTP."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(output.policy).Statement :
      s.Sid == "OnlyWriters" && s.Principal == "*" && s.Resource == ["arn:aws:s3:::lazyshift-test-bucket/*"]
    ])
    error_message = "Extra statements apply to every principal, on the paths given under this bucket."
  }
}

run "no_policy_for_the_emulator" {
  command = apply

  variables {
    attach_policy = false
  }

  assert {
    condition     = length(aws_s3_bucket_policy.this) == 0 && output.policy == null
    error_message = "attach_policy = false leaves the policy out."
  }
}

run "rejects_an_invalid_bucket_name" {
  command = plan

  variables {
    bucket = "Not_A_Bucket"
  }

  expect_failures = [var.bucket]
}
