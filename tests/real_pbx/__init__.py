"""The opt-in suite against a real Asterisk and a real FreeSWITCH (README "Testing against a real PBX")."""
