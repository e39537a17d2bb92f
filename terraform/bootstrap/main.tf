# The S3 bucket holding every environment's Terraform state, once per account and region.
# Locking is S3-native (`use_lockfile = true` in envs/*/<env>.s3.tfbackend, Terraform >=
# 1.10): a `<key>.tflock` object written with a conditional PUT, no DynamoDB table.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # Derived, not chosen: make stage0 computes the same name from the caller's account.
  bucket = "${var.project}-tfstate-${data.aws_caller_identity.current.account_id}-${var.region}"

  tags = {
    Project   = var.project
    ManagedBy = "terraform"
    Component = "terraform-state"
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.project} Terraform state"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The account administers the key; IAM policies decide who may use it (state readers).
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.project}-tfstate"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18:Access logs need a second bucket; CloudTrail data events are the account's choice, and every state version is kept (versioning).
  # checkov:skip=CKV_AWS_144:Cross-region replication needs a second region and key, an account-level decision; versioning keeps every state version.
  # checkov:skip=CKV2_AWS_62:Nothing consumes state bucket events.
  bucket        = local.bucket
  force_destroy = var.force_destroy

  tags = merge(local.tags, { Name = local.bucket })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.api_emulator ? 0 : 1

  bucket = aws_s3_bucket.this.id

  rule {
    id     = "old-state-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# State holds resource attributes: only over TLS. (moto ignores the condition and denies
# every object request, so the emulator run leaves the policy out.)
resource "aws_s3_bucket_policy" "this" {
  count = var.api_emulator ? 0 : 1

  bucket = aws_s3_bucket.this.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyPlainHTTP"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# The role Terraform runs as in the pipeline: assumed by the Jenkins agent's instance role
# (tagged Project=<project>, Role=jenkins_agent by modules/host), never by keys.
################################################################################

resource "aws_iam_role" "deploy" {
  name                 = "${var.project}-terraform-deploy"
  description          = "Terraform of the ${var.project} environments (make stage0 on the Jenkins agent)"
  max_session_duration = 3600

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = {
          "aws:PrincipalTag/Project" = var.project
          "aws:PrincipalTag/Role"    = "jenkins_agent"
        }
      }
    }]
  })

  tags = local.tags
}

# Everything but IAM, Organizations and account settings (AWS-managed) ...
resource "aws_iam_role_policy_attachment" "deploy_power_user" {
  role       = aws_iam_role.deploy.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/PowerUserAccess"
}

# ... and IAM only for the project's own roles and instance profiles (the hosts', DLM's).
resource "aws_iam_role_policy" "deploy_iam" {
  name = "project-roles-only"
  role = aws_iam_role.deploy.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = [
          "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:TagRole",
          "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:PassRole",
          "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
          "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
          "iam:AttachRolePolicy", "iam:DetachRolePolicy",
          "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
          "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
          "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
        ]
        Resource = [
          "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${var.project}-*",
          "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:instance-profile/${var.project}-*",
        ]
      },
      {
        # Only the two AWS-managed policies the stack attaches.
        Effect   = "Deny"
        Action   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
        Resource = "*"
        Condition = {
          ArnNotEquals = {
            "iam:PolicyARN" = [
              "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
              "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole",
            ]
          }
        }
      },
    ]
  })
}
