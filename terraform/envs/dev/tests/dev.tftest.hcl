# terraform test: the dev environment's defaults, wired through modules/stack, against a
# mocked AWS provider. The shared rules (security groups, public IPs, validations, counts
# per var.hosts) are tested once in modules/stack/tests.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b"]
    }
  }

  mock_data "aws_ami" {
    defaults = {
      id = "ami-0123456789abcdef0"
    }
  }

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

  # The provider and the modules validate ARNs; give the mocks well-formed ones.
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/lazyshift-mock"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/lazyshift/mock"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::lazyshift-dev-mongodb-archive-123456789012"
    }
  }
}

variables {
  admin_cidrs = ["203.0.113.0/24"]
}

run "dev_defaults" {
  command = apply

  assert {
    condition = { for role in ["bastion", "mongodb", "mysql", "source", "client", "tools", "jenkins_agent"] :
      role => length([for n, h in output.hosts : n if h.role == role]) } == {
      bastion = 1, mongodb = 1, mysql = 1, source = 1, client = 1, tools = 1, jenkins_agent = 0
    }
    error_message = "dev has one host per role and no Jenkins agent."
  }

  assert {
    condition     = length(output.private_subnet_ids) == 2
    error_message = "dev spreads over two zones."
  }

  assert {
    condition     = output.environment == "dev" && output.archive_bucket_arn == "arn:aws:s3:::lazyshift-dev-mongodb-archive-123456789012"
    error_message = "Outputs name the environment and the archive bucket."
  }

  assert {
    condition     = alltrue([for n, h in output.hosts : startswith(n, "lazyshift-dev-")])
    error_message = "dev host names start with lazyshift-dev-."
  }

  assert {
    condition     = var.archive_force_destroy && var.single_nat_gateway && var.vpc_cidr == "10.40.0.0/16"
    error_message = "dev: one NAT gateway, its own VPC range, archive bucket destroyable."
  }
}
