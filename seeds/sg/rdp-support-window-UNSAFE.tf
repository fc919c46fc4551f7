# question: 3389/tcp
variable "support_cidrs" {
  type    = list(string)
  default = ["0.0.0.0/0"]
}

resource "aws_security_group" "admin" {
  name        = "admin-sg"
  description = "Windows admin hosts"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    description = "rdp for the support vendor"
    from_port   = 3389
    to_port     = 3389
    protocol    = "6"
    cidr_blocks = var.support_cidrs
  }
}
