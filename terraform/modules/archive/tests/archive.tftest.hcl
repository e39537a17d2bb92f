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

run "archive_bucket_is_named_for_the_account_and_has_a_lifecycle" {
  command = apply

  assert {
    condition     = output.bucket_name == "lazyshift-test-mongodb-archive-123456789012"
    error_message = "The bucket name carries the account id."
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this) == 1 && aws_s3_bucket_lifecycle_configuration.this[0].rule[0].status == "Enabled" && one(aws_s3_bucket_lifecycle_configuration.this[0].rule[0].transition).storage_class == "GLACIER"
    error_message = "The lifecycle rule exists, is enabled and moves objects to Glacier."
  }
}

run "only_the_writer_roles_may_put_objects" {
  command = apply

  assert {
    condition = anytrue([
      for s in jsondecode(module.bucket.policy).Statement :
      s.Effect == "Deny" && contains(flatten([s.Action]), "s3:PutObject") && toset(try(s.Condition.StringNotEquals["aws:PrincipalArn"], [])) == toset(var.writer_role_arns)
    ])
    error_message = "The bucket policy must deny PutObject to every principal but the writer roles."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(module.bucket.policy).Statement :
      s.Effect == "Deny" && try(s.Condition.Bool["aws:SecureTransport"], null) == "false"
    ])
    error_message = "The bucket policy must deny plain HTTP."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(output.writer_policy_json).Statement :
      s.Effect == "Allow" && alltrue([for a in s.Action : contains(["s3:ListBucket", "s3:PutObject", "s3:GetObject", "kms:GenerateDataKey", "kms:Decrypt"], a)])
      && alltrue([for r in s.Resource : startswith(r, output.bucket_arn) || r == var.kms_key_arn])
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
