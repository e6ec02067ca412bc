"""ccserver: an open contact-center server driving Asterisk (AMI + FastAGI) and FreeSWITCH (ESL)."""

__version__ = "0.1.0"
