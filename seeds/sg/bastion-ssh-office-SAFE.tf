# question: 22/tcp
variable "office_cidrs" {
  type    = list(string)
  default = ["203.0.113.0/24", "198.51.100.0/24"]
}

resource "aws_security_group" "bastion" {
  name        = "bastion-sg"
  description = "SSH from the office"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    description = "ssh from the office"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = var.office_cidrs
  }
}
