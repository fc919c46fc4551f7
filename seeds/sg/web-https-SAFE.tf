# question: 22/tcp
resource "aws_security_group" "web" {
  name        = "web-sg"
  description = "Public web tier"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    description      = "https from anywhere"
    from_port        = 443
    to_port          = 443
    protocol         = "tcp"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }

  ingress {
    description     = "ssh from the bastion"
    from_port       = 22
    to_port         = 22
    protocol        = "tcp"
    security_groups = ["sg-0fedcba9876543210"]
  }
}
