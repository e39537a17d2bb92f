terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # This root makes the bucket every environment's state lives in, so its own state cannot
  # be there before it runs: it stays local (terraform.tfstate here, git-ignored). It only
  # holds the bucket, its key and policy; losing it costs an `terraform import`, not data.
}

provider "aws" {
  region = var.region
}
