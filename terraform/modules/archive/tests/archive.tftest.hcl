mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::lazyshift-test-mongodb-archive-123456789012"
    }
  }
}

variables {
  name             = "lazyshift-test"
  environment      = "dev"
  kms_key_arn      = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  writer_role_arns = ["arn:aws:iam::123456789012:role/lazyshift-test-tools-1"]
}

run "archive_bucket_is_private_encrypted_versioned_with_lifecycle" {
  command = apply

  assert {
    condition     = aws_s3_bucket.this.bucket == "lazyshift-test-mongodb-archive-123456789012"
    error_message = "The bucket name carries the account id."
  }

  assert {
    condition = (aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy
    && aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets)
    error_message = "All public access must be blocked."
  }

  assert {
    condition     = one(aws_s3_bucket_versioning.this.versioning_configuration).status == "Enabled"
    error_message = "Versioning must be enabled."
  }

  assert {
    condition = alltrue([for r in aws_s3_bucket_server_side_encryption_configuration.this.rule :
    one(r.apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" && one(r.apply_server_side_encryption_by_default).kms_master_key_id == var.kms_key_arn])
    error_message = "Objects are encrypted with the environment's KMS key."
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this) == 1 && aws_s3_bucket_lifecycle_configuration.this[0].rule[0].status == "Enabled"
    error_message = "The lifecycle rule exists and is enabled."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs are disabled."
  }
}

run "only_the_writer_roles_may_put_objects" {
  command = apply

  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement :
      s.Effect == "Deny" && contains(flatten([s.Action]), "s3:PutObject") && toset(try(s.Condition.StringNotEquals["aws:PrincipalArn"], [])) == toset(var.writer_role_arns)
    ])
    error_message = "The bucket policy must deny PutObject to every principal but the writer roles."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement :
      s.Effect == "Deny" && try(s.Condition.Bool["aws:SecureTransport"], null) == "false"
    ])
    error_message = "The bucket policy must deny plain HTTP."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(output.writer_policy_json).Statement :
      s.Effect == "Allow" && alltrue([for a in s.Action : contains(["s3:ListBucket", "s3:PutObject", "s3:GetObject", "kms:GenerateDataKey", "kms:Decrypt"], a)])
      && alltrue([for r in s.Resource : startswith(r, aws_s3_bucket.this.arn) || r == var.kms_key_arn])
    ])
    error_message = "The writer policy grants only list/put/get on this bucket and use of its key."
  }
}

run "writer_arns_must_be_roles" {
  command = plan

  variables {
    writer_role_arns = ["*"]
  }

  expect_failures = [var.writer_role_arns]
}
