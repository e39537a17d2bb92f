# terraform test: the state bucket, against a mocked AWS provider.

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

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/lazyshift-terraform-deploy"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::lazyshift-tfstate-123456789012-eu-west-1"
    }
  }
}

run "state_bucket_is_named_for_account_and_region_keeps_versions_over_tls" {
  command = apply

  assert {
    condition     = output.bucket == "lazyshift-tfstate-123456789012-eu-west-1"
    error_message = "The bucket name is derived from project, account and region."
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation && output.kms_key_arn == aws_kms_key.this.arn
    error_message = "State is encrypted with a rotated customer-managed key."
  }

  assert {
    condition     = !var.force_destroy && length(aws_s3_bucket_lifecycle_configuration.this) == 1 && one(aws_s3_bucket_lifecycle_configuration.this[0].rule).noncurrent_version_expiration[0].noncurrent_days == var.noncurrent_version_days
    error_message = "A real state bucket is never force-destroyed and expires only old versions."
  }

  assert {
    condition     = strcontains(module.bucket.policy, "aws:SecureTransport")
    error_message = "Plain HTTP is denied."
  }
}

run "the_emulator_run_leaves_the_policy_out" {
  command = apply

  variables {
    api_emulator = true
  }

  assert {
    condition     = module.bucket.policy == null && length(aws_s3_bucket_lifecycle_configuration.this) == 0
    error_message = "Against moto, no bucket policy and no lifecycle rule."
  }
}

run "deploy_role_only_for_the_jenkins_agent_and_only_project_iam" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role.deploy.assume_role_policy).Statement[0].Condition.StringEquals == { "aws:PrincipalTag/Project" = "lazyshift", "aws:PrincipalTag/Role" = "jenkins_agent" }
    error_message = "Only the Jenkins agent's instance role (by its tags) assumes the deploy role."
  }

  assert {
    condition     = alltrue([for r in jsondecode(aws_iam_role_policy.deploy_iam.policy).Statement[0].Resource : strcontains(r, ":role/lazyshift-") || strcontains(r, ":instance-profile/lazyshift-")])
    error_message = "IAM writes only on the project's own roles and instance profiles."
  }

  assert {
    condition     = endswith(aws_iam_role_policy_attachment.deploy_power_user.policy_arn, ":policy/PowerUserAccess")
    error_message = "Everything but IAM comes from PowerUserAccess."
  }
}

run "rejects_a_short_version_history" {
  command = plan

  variables {
    noncurrent_version_days = 7
  }

  expect_failures = [var.noncurrent_version_days]
}
