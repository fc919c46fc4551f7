# question: 22/tcp
resource "aws_security_group" "vpn" {
  name        = "vpn-sg"
  description = "VPN gateways"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    description = "cluster peers"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    self        = true
  }

  ingress {
    description = "management"
    from_port   = 0
    to_port     = 1024
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
    self        = true
  }
}
