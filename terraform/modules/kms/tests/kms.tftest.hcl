mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
}

variables {
  name        = "lazyshift-test"
  environment = "dev"
}

run "key_rotates_and_only_the_account_administers_it" {
  command = apply

  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "Key rotation must be enabled."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.this.policy).Statement :
      try(s.Principal.AWS, "") == "arn:aws:iam::123456789012:root" || try(s.Principal.Service, "") == "logs.eu-west-1.amazonaws.com"
    ])
    error_message = "Only the account (through IAM) and CloudWatch Logs appear in the key policy."
  }

  assert {
    condition     = aws_kms_alias.this.name == "alias/lazyshift-test"
    error_message = "The alias follows the name."
  }
}
