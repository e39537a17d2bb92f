output "bucket" {
  description = "Name of the state bucket (TF_STATE_BUCKET for make stage0)."
  value       = module.bucket.id
}

output "region" {
  description = "Region of the state bucket (TF_STATE_REGION for make stage0)."
  value       = var.region
}

output "kms_key_arn" {
  description = "ARN of the key encrypting the state (state readers need kms:Decrypt on it)."
  value       = aws_kms_key.this.arn
}

output "deploy_role_arn" {
  description = "Role make stage0 runs Terraform as on the Jenkins agent (its AWS profile: role_arn + credential_source = Ec2InstanceMetadata)."
  value       = aws_iam_role.deploy.arn
}
