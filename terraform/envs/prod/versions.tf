terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Remote state in S3 with DynamoDB locking. Partial configuration: the bucket, key,
  # region and lock table come from backend.hcl (see backend.hcl.example), so no account
  # details live in the repository:  terraform init -backend-config=backend.hcl
  backend "s3" {}
}

provider "aws" {
  region = var.region
}
