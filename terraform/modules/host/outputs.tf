output "id" {
  description = "ID of the instance."
  value       = aws_instance.this.id
}

output "name" {
  description = "Name tag of the instance."
  value       = var.name
}

output "role" {
  description = "Role of the host."
  value       = var.role
}

output "private_ip" {
  description = "Private IP of the instance."
  value       = aws_instance.this.private_ip
}

output "private_dns" {
  description = "Private DNS name of the instance."
  value       = aws_instance.this.private_dns
}

output "public_ip" {
  description = "Public (Elastic) IP of the host (null when it has none)."
  value       = try(aws_eip.this[0].public_ip, null)
}

output "availability_zone" {
  description = "Availability zone of the instance."
  value       = aws_instance.this.availability_zone
}

output "ami_id" {
  description = "AMI the instance was launched from."
  value       = aws_instance.this.ami
}

output "iam_role_arn" {
  description = "ARN of the host's IAM role."
  value       = aws_iam_role.this.arn
}

output "iam_role_name" {
  description = "Name of the host's IAM role."
  value       = aws_iam_role.this.name
}

output "data_volume_id" {
  description = "ID of the data volume (null when the host has none)."
  value       = try(aws_ebs_volume.data[0].id, null)
}

output "role_policy_json" {
  description = "The extra IAM policy of this host's role (null when it has none)."
  value       = var.role_policy_json
}
