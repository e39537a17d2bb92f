terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Remote state in S3 with S3-native locking (use_lockfile, no DynamoDB table). Partial
  # configuration: key and locking in dev.s3.tfbackend, bucket and region added by
  # make stage0 (tools/infra/stage0.py), so no account details live in the repository.
  backend "s3" {}
}

provider "aws" {
  region = var.region
}
