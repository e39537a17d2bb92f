output "project" {
  description = "Project name (Project tag)."
  value       = var.project
}

output "environment" {
  description = "Environment name (Environment tag)."
  value       = var.environment
}

output "region" {
  description = "AWS region of the environment."
  value       = var.region
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC (the hand-over derives the MySQL account host pattern from it)."
  value       = var.vpc_cidr
}

output "mongodb_retired" {
  description = "true once make teardown removed the MongoDB host and its volume; make stage0 keeps it so."
  value       = var.retire_mongodb
}

output "private_subnet_ids" {
  description = "IDs of the private subnets."
  value       = module.network.private_subnet_ids
}

output "hosts" {
  description = "Every host by name: role, instance id, private and public IP, zone."
  value = {
    for k, h in module.host : h.name => {
      role              = h.role
      id                = h.id
      private_ip        = h.private_ip
      public_ip         = h.public_ip
      availability_zone = h.availability_zone
    }
  }
}

output "hosts_by_role" {
  description = "Private IPs of the hosts, by role (every role listed, empty when it has no host)."
  value = {
    for role in local.roles : role => [
      for k in sort(keys(local.hosts)) : module.host[k].private_ip if local.hosts[k].role == role
    ]
  }
}

output "data_volume_ids" {
  description = "Data volume ID by database host name (kept across instance replacement, snapshotted daily)."
  value       = { for k, h in module.host : h.name => h.data_volume_id if h.data_volume_id != null }
}

output "mongodb_host" {
  description = "Private IP of the MongoDB host (null when there is none, e.g. after stage 5)."
  value       = try([for k in sort(keys(local.hosts)) : module.host[k].private_ip if local.hosts[k].role == "mongodb"][0], null)
}

output "mysql_host" {
  description = "Private IP of the MySQL host."
  value       = try([for k in sort(keys(local.hosts)) : module.host[k].private_ip if local.hosts[k].role == "mysql"][0], null)
}

output "source_host" {
  description = "Private IP of the mock source host (TCP 8282)."
  value       = try([for k in sort(keys(local.hosts)) : module.host[k].private_ip if local.hosts[k].role == "source"][0], null)
}

output "bastion_public_ip" {
  description = "Public IP of the bastion (the SSH ProxyJump for Ansible)."
  value       = try([for k in sort(keys(local.hosts)) : module.host[k].public_ip if local.hosts[k].role == "bastion"][0], null)
}

output "security_group_ids" {
  description = "Security group ID by role."
  value       = module.network.security_group_ids
}

output "archive_bucket" {
  description = "Name of the S3 bucket receiving the MongoDB archive."
  value       = module.archive.bucket_name
}

output "archive_bucket_arn" {
  description = "ARN of the S3 bucket receiving the MongoDB archive."
  value       = module.archive.bucket_arn
}

output "kms_key_arn" {
  description = "ARN of the environment's KMS key (volumes, archive, flow logs)."
  value       = module.kms.key_arn
}
