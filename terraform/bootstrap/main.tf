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

# State holds resource attributes: a private bucket (modules/s3-bucket), only over TLS.
# (moto ignores the TLS condition and denies every object request, so the emulator run
# leaves the policy out.)
module "bucket" {
  source = "../modules/s3-bucket"

  bucket        = local.bucket
  kms_key_arn   = aws_kms_key.this.arn
  force_destroy = var.force_destroy
  attach_policy = !var.api_emulator
  tags          = local.tags
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.api_emulator ? 0 : 1

  bucket = module.bucket.id

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

  depends_on = [module.bucket]
}

# The bucket's resources moved into modules/s3-bucket: existing states follow them.
moved {
  from = aws_s3_bucket.this
  to   = module.bucket.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_ownership_controls.this
  to   = module.bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_public_access_block.this
  to   = module.bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_versioning.this
  to   = module.bucket.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.this
  to   = module.bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_policy.this
  to   = module.bucket.aws_s3_bucket_policy.this
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
